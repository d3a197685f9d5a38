"""bf16-mixed against float32 on this machine: seconds per step, the objective reached, and channels_last.

    python benchmarks/precision.py [--size 64] [--objective-size 512] [--steps 100] [--repeats 2] [--write]

1. Seconds per `lit-nst fit` step at `--size`, 32-true against bf16-mixed, and (where bf16 is native)
   bf16-mixed with autocast casting the VGG's weights at every forward, as before they were cast once a run;
   each run a fresh process, the runs interleaved `--repeats` times, the best of each kept. `--size` is
   small by default: a CPU without native bfloat16 emulates it, about 100x slower.
2. Where bf16-mixed is this machine's default: the objective of the written image after `--steps` steps at
   `--objective-size` on two bundled pairs, float32 against bf16-mixed, judged by one float32 objective.
3. channels_last against contiguous: the objective's forward and backward, in float32 at `--objective-size`
   and in bf16-mixed at `--size`.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from bench import StepTimer, machine, steps_only, write_section  # benchmarks/bench.py, beside this script

from lit_nst.cli import cli_main
from lit_nst.objective.backbone import VGGFeatures
from lit_nst.precision import cpu_flags, default_precision

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "assets"
PAIRS = [("chelsea", "starry_night"), ("coffee", "the_scream")]
STEPS, WARMUP = 5, 2


def fit(content: str, style: str, size: int, precision: str, steps: int, timer: StepTimer | None = None):
    with tempfile.TemporaryDirectory() as folder:
        cli = cli_main(
            [
                "--config",
                str(REPO / "configs/gatys.yaml"),
                "--data.content",
                str(ASSETS / f"{content}.jpg"),
                "--data.style",
                str(ASSETS / f"{style}.jpg"),
                "--data.size",
                str(size),
                "--trainer.precision",
                precision,
                "--trainer.max_steps",
                str(steps),
                *steps_only(folder),
            ],
            run=False,
        )
        if timer is not None:
            cli.trainer.callbacks.append(timer)
        cli.trainer.fit(cli.model, cli.datamodule)
    return cli


def step_seconds_in_child(size: int, precision: str, cast_every_forward: bool) -> float:
    command = [sys.executable, __file__, "--child", str(size), precision, str(cast_every_forward)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def child(size: int, precision: str, cast_every_forward: bool) -> float:
    if cast_every_forward:  # the VGG's weights recast by autocast at every forward, as before the cast was kept
        VGGFeatures._convolution_weights = lambda self, device: None
    timer = StepTimer()
    fit("astronaut", "starry_night", size, precision, STEPS + WARMUP, timer)
    timed = timer.ends[WARMUP - 1 :]
    return (timed[-1] - timed[0]) / (len(timed) - 1)


def step_table(size: int, repeats: int, native: bool) -> list[str]:
    runs = {"32-true": ("32-true", False), "bf16-mixed": ("bf16-mixed", False)}
    if native:
        runs["bf16-mixed, weights cast every forward"] = ("bf16-mixed", True)
    best = {name: float("inf") for name in runs}
    for repeat in range(repeats):
        for name, (precision, cast) in runs.items():
            seconds = step_seconds_in_child(size, precision, cast)
            best[name] = min(best[name], seconds)
            print(f"  repeat {repeat + 1}: {name}: {seconds:.3f} s/step", flush=True)
    rows = [f"| precision at {size} px | best s/step | against 32-true |", "| --- | ---: | ---: |"]
    rows += [f"| {name} | {seconds:.3f} | {seconds / best['32-true']:.2f}x |" for name, seconds in best.items()]
    return rows


def objective_table(size: int, steps: int, default: str) -> list[str]:
    rows = [f"| pair | 32-true objective | {default} objective | difference |", "| --- | ---: | ---: | ---: |"]
    for content, style in PAIRS:
        results, judge = {}, None
        for precision in ("32-true", default):
            cli = fit(content, style, size, precision, steps)
            judge = judge or cli.model.objective  # float32 targets of the first run judge both results
            results[precision] = cli.model.result()[0].float()
        with torch.no_grad():
            totals = {precision: judge([image]).total.item() for precision, image in results.items()}
        difference = totals[default] / totals["32-true"] - 1
        rows.append(
            f"| {content} × {style} | {totals['32-true']:,.0f} | {totals[default]:,.0f} | {100 * difference:+.2f} % |"
        )
        print(rows[-1], flush=True)
    return rows


def channels_last_rows(size: int, precision: str, repeats: int) -> list[str]:
    """Forward and backward of the objective, contiguous against channels_last."""
    cli = fit("astronaut", "starry_night", size, precision, 1)
    objective = cli.model.objective
    image = cli.model.canvas.picture(cli.model.target).detach()
    layouts = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
    best = dict.fromkeys(layouts, float("inf"))
    for _ in range(repeats):
        for name, layout in layouts.items():
            for module in objective.backbone.features:
                for buffer_name, buffer in list(module.named_buffers(recurse=False)):
                    if buffer.dim() == 4:
                        setattr(module, buffer_name, buffer.contiguous(memory_format=layout))
            objective.backbone._autocast_weights = None
            target = image.clone().contiguous(memory_format=layout).requires_grad_(True)
            for _ in range(3):
                start = time.perf_counter()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16-mixed"):
                    total = objective(target).total.sum()
                total.backward()
                best[name] = min(best[name], time.perf_counter() - start)
    rows = [
        f"| {precision}, {size} px, {name} | {seconds:.3f} | {seconds / best['contiguous']:.2f}x |"
        for name, seconds in best.items()
    ]
    print("\n".join(rows), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--objective-size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--write", action="store_true", help="also write the tables into BENCHMARKS.md")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(int(args.child[0]), args.child[1], args.child[2] == "True")))
        return
    default, why = default_precision("cpu")
    flags = sorted(cpu_flags() & {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "bf16"})
    lines = [
        f"Machine: {machine()}; CPU flags of note: {', '.join(flags) or 'none'}",
        f"Default precision here: {default} ({why}).",
        "",
        f"`python benchmarks/precision.py {' '.join(sys.argv[1:])}` (configs/gatys.yaml, astronaut × Starry "
        f"Night; {STEPS} timed steps after {WARMUP} warm-up steps, each run a fresh process):",
        "",
    ]
    print("\n".join(lines), flush=True)
    lines += [*step_table(args.size, args.repeats, default == "bf16-mixed"), ""]
    print("\n".join(lines[-6:]), flush=True)
    if default == "bf16-mixed":
        lines += [f"Objective of the written image after {args.steps} steps at {args.objective_size} px:", ""]
        lines += [*objective_table(args.objective_size, args.steps, default), ""]
    lines += [
        "Memory layout: the objective's forward and backward, best of 3 × repeats:",
        "",
        "| precision, size, layout | best s | against contiguous |",
        "| --- | ---: | ---: |",
        *channels_last_rows(args.objective_size, "32-true", args.repeats),
        *channels_last_rows(args.size, "bf16-mixed", args.repeats),
    ]
    print("\n".join(lines), flush=True)
    if args.write:
        write_section(REPO / "BENCHMARKS.md", "Precision", "\n".join(lines))


if __name__ == "__main__":
    main()
