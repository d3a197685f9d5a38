"""Seconds per step and peak memory of `lit-nst fit`, with the memory estimate beside the measurement.

    python benchmarks/bench.py            # CPU: 128, 256, 512 px; GPU (if any): 512 ... 4096 px
    python benchmarks/bench.py --write    # also write the table into BENCHMARKS.md

Each configuration runs in a fresh process (peak memory is per process): fp32 against bf16-mixed,
torch.compile off and on, then the per-step overhead of lit-nst against a plain PyTorch loop.
"""

import argparse
import ctypes
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from lightning.pytorch import Callback
from lightning.pytorch.loops.fit_loop import _FitLoop

from lit_nst.precision import NATIVE_BF16_CPU_FLAGS, cpu_flags

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "assets"
STEPS, WARMUP = 10, 3


# The pair most benchmarks paint: NASA's astronaut in Starry Night.
ASTRONAUT_IN_STARRY_NIGHT = [
    "--data.content",
    str(ASSETS / "astronaut.jpg"),
    "--data.style",
    str(ASSETS / "starry_night.jpg"),
]


def steps_only(folder: str) -> list[str]:
    """The flags of a run timed for its steps alone: `unwatched`, no validation pass, no checkpoint written."""
    return [*unwatched(folder), "--trainer.limit_val_batches", "0", "--trainer.enable_checkpointing", "false"]


def unwatched(folder: str) -> list[str]:
    """The flags of a timed run in a folder of its own, with no progress bar or logger to time."""
    return [
        "--trainer.default_root_dir",
        folder,
        "--output.path",
        f"{folder}/out.png",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.logger",
        "false",
    ]


class StepTimer(Callback):
    """Records when each step ends (after the GPU has finished it)."""

    def __init__(self) -> None:
        self.ends: list[float] = []

    def on_train_batch_end(self, *args) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.ends.append(time.perf_counter())


def measure_one(size: int, precision: str, compile_backbone: bool) -> dict:
    """Run in a child process: time STEPS steps after WARMUP, and the peak memory of the run."""
    from lit_nst.cli import cli_main

    timer = StepTimer()
    with tempfile.TemporaryDirectory() as folder:
        cli = cli_main(
            [
                *ASTRONAUT_IN_STARRY_NIGHT,
                "--data.size",
                str(size),
                "--trainer.precision",
                precision,
                "--model.compile",
                str(compile_backbone),
                "--model.style_weight",
                "50",
                "--trainer.max_steps",
                str(STEPS + WARMUP),
                *unwatched(folder),
            ],
            run=False,
        )
        weights = sum(b.numel() * b.element_size() for b in cli.model.objective.backbone.buffers())
        # Baseline once the model exists; the peak of loading the weight file is not the run's.
        rss_before = reset_peak_rss()
        cli.trainer.callbacks.append(timer)
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        cli.trainer.fit(cli.model, cli.datamodule)
    if torch.cuda.is_available():
        peak = torch.cuda.max_memory_allocated()
    else:
        # The weights were resident before the baseline was taken; everything else came with the run.
        peak = proc_status_bytes("VmHWM") - rss_before + weights
    timed = timer.ends[WARMUP - 1 :]
    return {
        "seconds_per_step": (timed[-1] - timed[0]) / (len(timed) - 1),
        "peak_bytes": peak,
        "estimate_bytes": cli.model.memory_estimate,
    }


def proc_status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    return 0


def reset_peak_rss() -> int:
    """Start the process's peak-RSS count afresh (Linux: clear_refs 5) and return the current RSS."""
    # Hand freed heap memory back to the system first: memory the run reuses from what loading the
    # model freed would otherwise never raise the RSS, and the peak would read low.
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")
    return proc_status_bytes("VmRSS")


def run_child(size: int, precision: str, compile_backbone: bool) -> dict:
    command = [sys.executable, __file__, "--child", str(size), precision, str(compile_backbone)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if result.returncode != 0:
        errors = [line for line in result.stderr.splitlines() if "Error" in line]
        return {"error": "failed: " + (errors[-1].strip()[:100] if errors else "see stderr")}
    return json.loads(result.stdout.strip().splitlines()[-1])


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if "model name" in line]
        cpu = names[0] if names else cpu
    text = f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}"
    native = sorted(cpu_flags() & set(NATIVE_BF16_CPU_FLAGS))
    text += f", native bfloat16: {', '.join(native) if native else 'no'}"
    if torch.cuda.is_available():
        text += f", GPU: {torch.cuda.get_device_name()}"
    return text


def table(device: str, sizes: list[int], compile_sizes: list[int]) -> list[str]:
    rows = [
        "| device | size | precision | compile | s/step | peak memory | estimate | estimate/peak |",
        "| --- | ---: | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for size in sizes:
        for precision in ("32-true", "bf16-mixed"):
            for compile_backbone in (False, True) if size in compile_sizes else (False,):
                result = run_child(size, precision, compile_backbone)
                on_off = "on" if compile_backbone else "off"
                if "error" in result:
                    rows.append(f"| {device} | {size} | {precision} | {on_off} | {result['error']} | | | |")
                else:
                    peak, estimate = result["peak_bytes"], result["estimate_bytes"]
                    rows.append(
                        f"| {device} | {size} | {precision} | {on_off} | "
                        f"{result['seconds_per_step']:.4f} | {peak / 2**20:.0f} MiB | {estimate / 2**20:.0f} MiB | "
                        f"{estimate / peak:.2f} |"
                    )
                print(rows[-1], flush=True)
    return rows


def overhead_rows() -> list[str]:
    sys.path.insert(0, str(REPO))
    from benchmarks.overhead import lit_nst_seconds_per_step, plain_loop_seconds_per_step

    rows = ["| size | plain loop s/step | lit-nst fit s/step | overhead |", "| ---: | ---: | ---: | ---: |"]
    for size in (128, 256):
        plain, lit = plain_loop_seconds_per_step(size, 20), lit_nst_seconds_per_step(size, 20)
        rows.append(f"| {size} | {plain:.4f} | {lit:.4f} | {100 * (lit / plain - 1):+.1f} % |")
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="write the tables into BENCHMARKS.md")
    parser.add_argument(
        "--compile-sizes",
        type=int,
        nargs="*",
        help="sizes also run with torch.compile (default: all on a GPU, 128 on the CPU)",
    )
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        size, precision, compile_backbone = int(args.child[0]), args.child[1], args.child[2] == "True"
        print(json.dumps(measure_one(size, precision, compile_backbone)))
        return
    lines = [
        f"Machine: {machine()}",
        "",
        "VGG19 (caffe weights), JobwiseLBFGS, one job, "
        f"{STEPS} timed steps after {WARMUP} warm-up steps; each row a fresh process.",
        "",
        "Peak memory: on CUDA the allocator's peak; on the CPU the growth of the process's resident memory "
        "during fit (freed heap handed back first, so reused memory counts), plus the weights.",
        "",
    ]
    print("\n".join(lines))
    if torch.cuda.is_available():
        sizes = [512, 1024, 2048, 4096]
        lines += table("GPU", sizes, sizes if args.compile_sizes is None else args.compile_sizes) + [""]
    else:
        lines += table("CPU", [128, 256, 512], [128] if args.compile_sizes is None else args.compile_sizes) + [""]
    lines += ["Per-step overhead of `lit-nst fit` against a plain PyTorch loop on the same objective (L-BFGS):", ""]
    lines += overhead_rows()
    if args.write:
        write_section(REPO / "BENCHMARKS.md", "GPU" if torch.cuda.is_available() else "CPU", "\n".join(lines))


# The training loop's own time, without start-up: Lightning's Timer callback cannot be given through the
# CLI (its config does not serialise), so the loop's `run` is timed directly, once `time_fit_loops` is called.
LOOP_SECONDS: list[float] = []


def time_fit_loops() -> None:
    """From now on, every fit loop's `run` appends its seconds to `LOOP_SECONDS`."""
    untimed = _FitLoop.run
    if getattr(untimed, "timed", False):
        return

    def timed(self: _FitLoop) -> None:
        start = time.perf_counter()
        try:
            untimed(self)
        finally:
            LOOP_SECONDS.append(time.perf_counter() - start)

    timed.timed = True
    _FitLoop.run = timed


def write_section(path: Path, title: str, body: str) -> None:
    """Put `body` between the `<!-- generated: title -->` marker lines of BENCHMARKS.md, with the command and commit
    that made it; every line outside the markers (the hand-written rest) stays as it is. Without the markers, the
    marked part goes at the end of the `## title` section, or of the file in a new section of that title."""
    start, end = f"<!-- generated: {title} -->", f"<!-- /generated: {title} -->"
    marked = f"{start}\n{provenance()}\n\n{body.strip()}\n{end}"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    between = re.compile(rf"^{re.escape(start)}$.*?^{re.escape(end)}$", flags=re.MULTILINE | re.DOTALL)
    section = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", flags=re.MULTILINE | re.DOTALL)
    if between.search(text):
        text = between.sub(lambda _: marked, text, count=1)
    elif found := section.search(text):
        rest = text[found.end() :]
        text = f"{text[: found.end()].rstrip()}\n\n{marked}\n" + (f"\n{rest}" if rest else "")
    else:
        text = f"{text.rstrip()}\n\n## {title}\n\n{marked}\n"
    path.write_text(text)
    print(f"wrote {path}")


def provenance() -> str:
    """The command and the commit a table was made by (`+` where the checkout had changes of its own)."""

    def git(*args: str) -> str:
        env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}  # read only: git status does not refresh the index
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=REPO, env=env).stdout.strip()

    script = Path(sys.argv[0]).resolve()
    shown = script.relative_to(REPO).as_posix() if script.is_relative_to(REPO) else sys.argv[0]
    command = shlex.join(["python", shown, *sys.argv[1:]])
    commit = git("rev-parse", "--short", "HEAD") or "not recorded"
    changed = "+" if commit != "not recorded" and git("status", "--porcelain", "--untracked-files=no") else ""
    return f"Written by `{command}` at commit {commit}{changed}."


if __name__ == "__main__":
    main()
