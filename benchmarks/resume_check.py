"""Straight run against interrupted-and-resumed run, for L-BFGS and Adam; and what a checkpoint weighs.

    python benchmarks/resume_check.py [--size 64] [--steps 40]

Prints the largest per-pixel difference between the final images of a run of N steps and a run of
N/2 steps resumed to N (`--ckpt_path last`), and the checkpoint's size against the target image's.
"""

import argparse
import tempfile
from pathlib import Path

import torch
from bench import ASTRONAUT_IN_STARRY_NIGHT  # benchmarks/bench.py, beside this script

from lit_nst.cli import cli_main

OPTIMIZERS = {
    "LBFGS": ["--optimizer", "LBFGS", "--optimizer.lr", "1", "--optimizer.max_iter", "1"],
    "Adam": ["--optimizer", "Adam", "--optimizer.lr", "0.02"],
}


def run(root: Path, size: int, steps: int, optimizer: list[str], *extra: str) -> None:
    cli_main(
        [
            "fit",
            *ASTRONAUT_IN_STARRY_NIGHT,
            "--data.size",
            str(size),
            "--trainer.max_steps",
            str(steps),
            "--trainer.default_root_dir",
            str(root),
            "--trainer.enable_progress_bar",
            "false",
            "--output.path",
            str(root / "out.png"),
            *optimizer,
            *extra,
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    rows = []
    for name, optimizer in OPTIMIZERS.items():
        with tempfile.TemporaryDirectory() as folder:
            straight, resumed = Path(folder) / "straight", Path(folder) / "resumed"
            run(straight, args.size, args.steps, optimizer)
            run(resumed, args.size, args.steps // 2, optimizer)
            run(resumed, args.size, args.steps, optimizer, "--ckpt_path", "last")
            checkpoints = [torch.load(r / "checkpoints" / "last.ckpt", weights_only=False) for r in (straight, resumed)]
            targets = [c["state_dict"]["target"] for c in checkpoints]
            difference = (targets[0] - targets[1]).abs().max().item()
            checkpoint_bytes = (resumed / "checkpoints" / "last.ckpt").stat().st_size
            target_bytes = targets[0].numel() * targets[0].element_size()
            vgg = [key for key in checkpoints[1]["state_dict"] if key != "target"]
            rows.append((name, difference, checkpoint_bytes, target_bytes, vgg))
    print(f"\n{args.size} px, {args.steps} steps straight vs {args.steps // 2} + resume to {args.steps}")
    print("| optimizer | max pixel difference | checkpoint | target image | tensors besides the target |")
    print("| --- | ---: | ---: | ---: | --- |")
    for name, difference, checkpoint_bytes, target_bytes, vgg in rows:
        print(
            f"| {name} | {difference:.3g} ({difference * 255:.3g}/255) | {checkpoint_bytes / 1e6:.2f} MB | "
            f"{target_bytes / 1e6:.3f} MB | {vgg or 'none'} |"
        )


if __name__ == "__main__":
    main()
