"""Coarse-to-fine against single-scale L-BFGS: objective reached at the output size, and time taken.

    python benchmarks/coarse_to_fine.py [--size 192] [--single 100 60] [--schedules 96:60,192:30 96:80,192:30] [--write]

Every run uses configs/gatys.yaml's objective; the objective of each written image is evaluated at the
output size with the same targets. The first `--single` step count is the reference of the ratios; the
others show what single-scale L-BFGS reaches in the time a schedule takes. "command" is the whole
`lit-nst fit` in this process (weights already cached, the last checkpoint write included); "loop" is
Lightning's fit loop alone (the steps, scale changes and the final checkpoint included; not start-up).
`--write` puts the table into BENCHMARKS.md.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from bench import LOOP_SECONDS, machine, time_fit_loops, unwatched, write_section  # benchmarks/bench.py

from lit_nst.cli import cli_main

REPO = Path(__file__).resolve().parents[1]
PAIR = ["--data.content", str(REPO / "assets/chelsea.jpg"), "--data.style", str(REPO / "assets/starry_night.jpg")]


def run(args: list[str]) -> tuple[float, float, torch.Tensor, object]:
    """(seconds of the whole command, seconds of the optimisation loop, result, cli)."""
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        cli = cli_main(
            [
                "fit",
                "--config",
                str(REPO / "configs/gatys.yaml"),
                *PAIR,
                *args,
                *unwatched(folder),
                "--trainer.limit_val_batches",
                "0",
            ]
        )
        return time.perf_counter() - start, LOOP_SECONDS.pop(), cli.model.result()[0], cli


time_fit_loops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--single", type=int, nargs="+", default=[100, 60])
    parser.add_argument("--schedules", nargs="+", default=["96:60,192:40", "96:75,192:36", "48:50,96:30,192:40"])
    parser.add_argument("--write", action="store_true", help="also write the table into BENCHMARKS.md")
    args = parser.parse_args()
    size = str(args.size)
    runs = [
        (f"single scale {size}", str(steps), ["--data.size", size, "--trainer.max_steps", str(steps)])
        for steps in args.single
    ]
    for schedule in args.schedules:
        scales = [part.split(":")[0] for part in schedule.split(",")]
        steps = [part.split(":")[1] for part in schedule.split(",")]
        runs.append(
            (
                " → ".join(scales),
                " + ".join(steps),
                ["--data.scales", f"[{','.join(scales)}]", "--data.steps", f"[{','.join(steps)}]"],
            )
        )
    rows, objective, reference = [], None, None
    for name, steps, flags in runs:
        seconds, loop, image, cli = run(flags)
        if objective is None:  # every result judged by the same objective, the first run's, at the output size
            objective = cli.model.objective
        with torch.no_grad():
            total = objective([image]).total.item()
        reference = reference or (seconds, loop, total)
        rows.append(
            f"| {name} | {steps} | {seconds:.1f} | {loop:.1f} | {total:,.0f} | {seconds / reference[0]:.2f} | "
            f"{loop / reference[1]:.2f} | {total / reference[2]:.3f} |"
        )
        print(rows[-1], flush=True)
    table = "\n".join(
        [
            f"| run | steps | command s | loop s | objective at {args.size} px | command time ratio "
            "| loop time ratio | objective ratio |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
            *rows,
        ]
    )
    print(table)
    if args.write:
        command = " ".join(["python benchmarks/coarse_to_fine.py", *sys.argv[1:]])
        body = f"Machine: {machine()}\n\n`{command}` (chelsea × Starry Night, gatys.yaml, L-BFGS):\n\n{table}"
        write_section(REPO / "BENCHMARKS.md", f"Coarse to fine, {args.size} px", body)


if __name__ == "__main__":
    main()
