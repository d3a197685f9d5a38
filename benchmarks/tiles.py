"""Tiled against untiled: seconds per step and peak memory, and the block size `auto` picks.

    python benchmarks/tiles.py [--sizes 512 1024 2048] [--print-size 4096] [--print-tile 512] [--write]

Each run is a fresh `lit-nst fit` process on chelsea (3:2) x Starry Night, float32, L-BFGS with 10 pairs
(configs/print.yaml's); at each size the untiled run (where its estimate fits) and the tiled one (1024-px blocks,
or half the size where that is smaller) run one after the other, so they meet the same machine. Peak memory is
the child's peak resident set (ru_maxrss: the Python process, torch and the VGG too), on CUDA the allocator's
peak. The print size runs tiled only, two steps (the first one timed too: at that size it is the measurement).
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from bench import StepTimer, machine, steps_only, write_section  # benchmarks/bench.py, beside this script

from lit_nst.cli import cli_main
from lit_nst.images import load_image, resize_longer_side
from lit_nst.memory import free_bytes
from lit_nst.module import StyleTransfer
from lit_nst.optim import JobwiseLBFGS
from lit_nst.planning import fit_estimate, plan_memory

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "assets"
GIB = 1024**3


def child(size: int, tile_size: str, steps: int) -> dict:
    timer = StepTimer()
    with tempfile.TemporaryDirectory() as folder:
        cli = cli_main(
            [
                "--data.content",
                str(ASSETS / "chelsea.jpg"),
                "--data.style",
                str(ASSETS / "starry_night.jpg"),
                "--data.size",
                str(size),
                "--trainer.precision",
                "32-true",
                "--model.tile_size",
                tile_size,
                "--optimizer.history_size",
                "10",
                "--trainer.max_steps",
                str(steps),
                *steps_only(folder),
            ],
            run=False,
        )
        cli.trainer.callbacks.append(timer)
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        cli.trainer.fit(cli.model, cli.datamodule)
    ends = [start, *timer.ends]
    seconds = [after - before for before, after in zip(ends, ends[1:], strict=False)]
    walk = cli.model.evaluation.block_walk
    return {
        "shape": list(cli.datamodule.jobs[0].shape),
        "tile_size": walk.tile_size if walk else 0,
        "blocks": len(walk.blocks(cli.datamodule.jobs[0].shape)) if walk else 1,
        "first_step_s": seconds[0],  # includes the targets, computed as the first step starts
        "step_s": min(seconds[1:]) if len(seconds) > 1 else seconds[0],
        "estimate_gib": cli.model.memory_estimate / GIB,
        # On CUDA the allocator's peak (what the estimate is of), on the CPU the whole process's resident peak.
        "peak_gib": (
            torch.cuda.max_memory_allocated()
            if torch.cuda.is_available()
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        )
        / GIB,
    }


def run(size: int, tile_size: str, steps: int) -> dict:
    command = [sys.executable, __file__, "--child", str(size), tile_size, str(steps)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.startswith("lit-nst: error")]
        return {"error": lines[-1] if lines else result.stderr[-300:]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def auto_choice(size: int) -> str:
    """What `--model.tile_size auto` picks for chelsea at `size` with this machine's free memory, and its estimate."""
    shape = resize_longer_side(load_image(ASSETS / "chelsea.jpg", "content"), size, "content").size[::-1]
    objective = StyleTransfer().objective
    optimizer = JobwiseLBFGS([torch.nn.Parameter(torch.zeros(1, 3, *shape))], history_size=10)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    estimate = fit_estimate(objective, [shape], [0], 1, optimizer, 100, "32-true", device)
    free = free_bytes(device)
    plan = plan_memory("auto", objective, [shape], 1, estimate, 1, free, size, 10)
    picked = f"{plan.tile_size}-px blocks" if plan.tile_size else "untiled"
    return f"{shape[0]}x{shape[1]}: {picked} ({plan.estimate / GIB:.1f} GiB of {free / GIB:.1f} GiB free)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[512, 1024, 2048])
    parser.add_argument("--print-size", type=int, default=4096)
    parser.add_argument("--print-tile", type=int, default=512)
    parser.add_argument("--write", action="store_true", help="write the table into BENCHMARKS.md")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        size, tile_size, steps = args.child
        print(json.dumps(child(int(size), tile_size, int(steps))))
        return

    peak = "peak GiB (CUDA allocator)" if torch.cuda.is_available() else "peak RSS GiB"
    rows = [
        f"| size | run | blocks | first step s | s/step | vs untiled | {peak} | estimate GiB |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for size in args.sizes:
        tile = str(min(1024, size // 32 * 16))
        steps = 4 if size <= 1024 else 2
        untiled, tiled = run(size, "0", steps), run(size, tile, steps)
        for name, result in (("untiled", untiled), (f"tiled {tile}", tiled)):
            print(f"{size}: {name}: {result}", flush=True)
            if "error" in result:
                rows.append(f"| {size} | {name} | | | | | | {result['error']} |")
                continue
            ratio = f"{result['step_s'] / untiled['step_s']:.2f}x" if "error" not in untiled else ""
            rows.append(
                f"| {'x'.join(map(str, result['shape']))} | {name} | {result['blocks']} | "
                f"{result['first_step_s']:.2f} | {result['step_s']:.2f} | {ratio} | {result['peak_gib']:.2f} | "
                f"{result['estimate_gib']:.2f} |"
            )
    if args.print_size:
        result = run(args.print_size, str(args.print_tile), 2)
        print(f"{args.print_size}: tiled {args.print_tile}: {result}", flush=True)
        if "error" not in result:
            rows.append(
                f"| {'x'.join(map(str, result['shape']))} | tiled {args.print_tile} | {result['blocks']} | "
                f"{result['first_step_s']:.1f} | {result['step_s']:.1f} | | {result['peak_gib']:.2f} | "
                f"{result['estimate_gib']:.2f} |"
            )
    picks = [auto_choice(size) for size in [*args.sizes, args.print_size] if size]
    table = "\n".join(rows) + "\n\n`auto` picks, with L-BFGS's 10 pairs: " + "; ".join(picks) + "."
    print(table)
    if args.write:
        body = (
            f"`python benchmarks/tiles.py` on {machine()}: chelsea x Starry Night, float32, L-BFGS with 10 "
            'pairs, each run a fresh process; untiled and tiled one after the other at each size. "first step" '
            "includes computing the targets; s/step is the best later step. On the CPU the peak is the whole "
            "process's resident set.\n\n" + table
        )
        write_section(REPO / "BENCHMARKS.md", "Tiles", body)


if __name__ == "__main__":
    main()
