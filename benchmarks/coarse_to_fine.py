"""Coarse-to-fine against single-scale L-BFGS: objective reached at the output size, and time taken.

    python benchmarks/coarse_to_fine.py [--size 192] [--single 100] [--schedules 96:60,192:30 96:80,192:30]

Both runs use configs/gatys.yaml's objective; the objective of each final image is evaluated at the
output size with the same targets.
"""

import argparse
import tempfile
import time
from pathlib import Path

import torch

from lit_nst.cli import cli_main

REPO = Path(__file__).resolve().parents[1]
PAIR = ["--data.content", str(REPO / "assets/chelsea.jpg"), "--data.style", str(REPO / "assets/starry_night.jpg")]


def run(args: list[str]) -> tuple[float, torch.Tensor, object]:
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        cli = cli_main(
            ["fit", "--config", str(REPO / "configs/gatys.yaml"), *PAIR, *args, "--trainer.default_root_dir", folder,
             "--output.path", f"{folder}/out.png", "--trainer.enable_progress_bar", "false",
             "--trainer.logger", "false", "--trainer.limit_val_batches", "0"]
        )  # fmt: skip
        return time.perf_counter() - start, cli.model.result(), cli


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--single", type=int, default=100)
    parser.add_argument("--schedules", nargs="+", default=["96:60,192:30", "96:80,192:30", "96:60,192:40"])
    args = parser.parse_args()
    single_time, single_image, single = run(["--data.size", str(args.size), "--trainer.max_steps", str(args.single)])
    objective = single.model.objective  # every result judged by the same objective at the output size
    with torch.no_grad():
        single_total = objective(single_image).total.item()
    rows = [f"| single scale {args.size} | {args.single} | {single_time:.1f} | {single_total:,.0f} | 1.00 | 1.000 |"]
    for schedule in args.schedules:
        scales = [int(part.split(":")[0]) for part in schedule.split(",")]
        steps = [int(part.split(":")[1]) for part in schedule.split(",")]
        seconds, image, _ = run(["--data.scales", str(scales), "--data.steps", str(steps)])
        with torch.no_grad():
            total = objective(image).total.item()
        rows.append(
            f"| {' → '.join(map(str, scales))} | {' + '.join(map(str, steps))} | {seconds:.1f} | {total:,.0f} | "
            f"{seconds / single_time:.2f} | {total / single_total:.3f} |"
        )
    print(f"| run | steps | seconds | objective at {args.size} px | time ratio | objective ratio |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
