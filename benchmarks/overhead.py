"""Per-step time of `lit-nst fit` against a plain PyTorch loop on the same objective (CPU, L-BFGS).

    python benchmarks/overhead.py [--sizes 128 256] [--steps 30] [--rounds 3]

Both optimise the same StyleObjective with torch.optim.LBFGS (lr 1, max_iter 1, history 100) from the
content image; `lit-nst fit` runs with its defaults (rich progress bar, CSV logging every step).
"""

import argparse
import platform
import tempfile
import time
from pathlib import Path

import torch
from lightning.pytorch import Callback

from lit_nst.cli import cli_main
from lit_nst.data import StyleImages
from lit_nst.module import StyleTransfer
from lit_nst.optim import LBFGS_LOSS_SCALE

ASSETS = Path(__file__).resolve().parents[1] / "assets"
CONTENT, STYLE = ASSETS / "astronaut.jpg", ASSETS / "starry_night.jpg"
WARMUP = 3


def plain_loop_seconds_per_step(size: int, steps: int) -> float:
    images = StyleImages(str(CONTENT), str(STYLE), size=size)
    model = StyleTransfer(style_weight=50.0)
    contents = torch.stack([job.content for job in images.jobs])
    model.objective.set_targets(contents, [job.style for job in images.jobs])
    image = contents.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([image], lr=1.0, max_iter=1, history_size=100)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = model.objective(image).total.sum() * LBFGS_LOSS_SCALE
        loss.backward()
        return loss

    for _ in range(WARMUP):
        optimizer.step(closure)
    start = time.perf_counter()
    for _ in range(steps):
        optimizer.step(closure)
    return (time.perf_counter() - start) / steps


class StepTimer(Callback):
    """Wall time from the end of one step to the end of the next: everything Lightning does per step."""

    def __init__(self) -> None:
        self.ends: list[float] = []

    def on_train_batch_end(self, *args) -> None:
        self.ends.append(time.perf_counter())


def lit_nst_seconds_per_step(size: int, steps: int) -> float:
    timer = StepTimer()
    with tempfile.TemporaryDirectory() as folder:
        cli = cli_main(
            [
                "--data.content",
                str(CONTENT),
                "--data.style",
                str(STYLE),
                "--data.size",
                str(size),
                "--model.style_weight",
                "50",
                "--optimizer",
                "LBFGS",
                "--optimizer.lr",
                "1",
                "--optimizer.max_iter",
                "1",
                "--optimizer.history_size",
                "100",
                "--trainer.max_steps",
                str(steps + WARMUP),
                "--trainer.default_root_dir",
                folder,
                "--output.path",
                f"{folder}/out.png",
            ],
            run=False,
        )
        cli.trainer.callbacks.append(timer)
        cli.trainer.fit(cli.model, cli.datamodule)
    timed = timer.ends[WARMUP - 1 :]
    return (timed[-1] - timed[0]) / (len(timed) - 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print("| size | plain loop s/step | lit-nst fit s/step | overhead |")
    print("| ---: | ---: | ---: | ---: |")
    for size in args.sizes:
        plain, lit = [], []
        for _ in range(args.rounds):  # interleaved, so drift in machine load hits both alike
            plain.append(plain_loop_seconds_per_step(size, args.steps))
            lit.append(lit_nst_seconds_per_step(size, args.steps))
        p, q = min(plain), min(lit)  # the fastest of each: the least disturbed by the machine
        print(f"| {size} | {p:.4f} | {q:.4f} | {100 * (q / p - 1):+.1f} % |", flush=True)


if __name__ == "__main__":
    main()
