"""Coarse-to-fine against single-scale L-BFGS: objective reached at the output size, and time taken.

    python benchmarks/coarse_to_fine.py [--size 192] [--single 100] [--schedule 96:60,192:40]

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
    parser.add_argument("--schedule", default="96:60,192:40")
    args = parser.parse_args()
    scales = [int(part.split(":")[0]) for part in args.schedule.split(",")]
    steps = [int(part.split(":")[1]) for part in args.schedule.split(",")]
    single_time, single_image, single = run(["--data.size", str(args.size), "--trainer.max_steps", str(args.single)])
    schedule_time, schedule_image, _ = run(["--data.scales", str(scales), "--data.steps", str(steps)])
    with torch.no_grad():  # both judged by the single-scale run's objective at the output size
        objective = single.model.objective
        single_total = objective(single_image).total.item()
        schedule_total = objective(schedule_image).total.item()
    print(f"| run | steps | seconds | objective at {args.size} px |")
    print("| --- | --- | ---: | ---: |")
    print(f"| single scale {args.size} | {args.single} | {single_time:.1f} | {single_total:,.0f} |")
    schedule = f"{' → '.join(map(str, scales))} | {' + '.join(map(str, steps))}"
    print(f"| {schedule} | {schedule_time:.1f} | {schedule_total:,.0f} |")
    print(f"time ratio {schedule_time / single_time:.2f}, objective ratio {schedule_total / single_total:.3f}")


if __name__ == "__main__":
    main()
