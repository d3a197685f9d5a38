"""`make demo` against the demo it replaced: wall-clock time and the objective of the written picture.

    python benchmarks/demo.py [--repeats 2] [--write]

The demo runs as `make demo` runs it (without the progress bar), a fresh `lit-nst fit` process timed from
start to exit. The old demo (configs/gatys.yaml: 300 float32 L-BFGS steps at 512 px) runs once. Both
pictures are judged by one float32 objective at 512 px (gatys.yaml's weights), and put side by side in
outputs/demo_comparison.png.
"""

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path

import torch
from bench import machine, write_section  # benchmarks/bench.py, beside this script

from lit_nst.cli import cli_main
from lit_nst.images import image_to_tensor, labelled_panel, load_image, save_image

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "outputs"
PAIR = ["--data.content", "assets/astronaut.jpg", "--data.style", "assets/starry_night.jpg"]
OLD_DEMO = ["--config", "configs/gatys.yaml", *PAIR, "--trainer.precision", "32-true"]


def demo_command() -> list[str]:
    """The lit-nst arguments of the Makefile's demo target, as make would run them."""
    printed = subprocess.run(["make", "-n", "demo"], capture_output=True, text=True, cwd=REPO, check=True).stdout
    words = shlex.split(printed.replace("\\\n", " "))
    return words[words.index("fit") :]


def timed(args: list[str], output: Path, root: Path) -> float:
    command = [
        str(REPO / ".venv/bin/lit-nst"),
        *args,
        "--trainer.default_root_dir",
        str(root),
        "--trainer.enable_progress_bar",
        "false",
    ]
    command = [word if word != args[args.index("--output.path") + 1] else str(output) for word in command]
    start = time.perf_counter()
    subprocess.run(command, cwd=REPO, check=True, capture_output=True)
    return time.perf_counter() - start


def objective_of(images: list[Path]) -> list[float]:
    """Each picture's total under one float32 gatys.yaml objective, with targets at 512 px."""
    cli = cli_main(
        [
            *OLD_DEMO,
            "--data.size",
            "512",
            "--trainer.max_steps",
            "0",
            "--trainer.logger",
            "false",
            "--trainer.enable_checkpointing",
            "false",
        ],
        run=False,
    )
    job = cli.datamodule.jobs[0]
    cli.model.objective.set_targets([job.content], [job.style])
    with torch.no_grad():
        return [cli.model.objective([image_to_tensor(load_image(path, "result"))]).total.item() for path in images]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--write", action="store_true", help="also write the table into BENCHMARKS.md")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    demo, new_image, old_image = demo_command(), OUT / "demo_new.png", OUT / "demo_old.png"
    print("make demo runs: lit-nst " + " ".join(demo), flush=True)
    seconds = [timed(demo, new_image, OUT / "demo_new_run") for _ in range(args.repeats)]
    print(f"make demo: {', '.join(f'{s:.1f}' for s in seconds)} s", flush=True)
    old_seconds = timed(["fit", *OLD_DEMO, "--output.path", "old.png"], old_image, OUT / "demo_old_run")
    print(f"old demo: {old_seconds:.1f} s", flush=True)
    new_total, old_total = objective_of([new_image, old_image])
    pictures = [
        (f"make demo ({min(seconds):.0f} s)", image_to_tensor(load_image(new_image, "new"))),
        (f"300 steps, float32 ({old_seconds:.0f} s)", image_to_tensor(load_image(old_image, "old"))),
    ]
    save_image(labelled_panel(pictures, 512), OUT / "demo_comparison.png")
    rows = [
        "| demo | wall clock s (best) | objective at 512 px | time ratio | objective ratio |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| `make demo`: {' '.join(demo[1 : demo.index('--data.content')])} | {min(seconds):.1f} | {new_total:,.0f} | "
        f"{min(seconds) / old_seconds:.2f} | {new_total / old_total:.3f} |",
        f"| before: gatys.yaml, 300 steps, 32-true | {old_seconds:.1f} | {old_total:,.0f} | 1.00 | 1.000 |",
    ]
    print("\n".join(rows))
    if args.write:
        body = (
            f"Machine: {machine()}\n\n`python benchmarks/demo.py {' '.join(sys.argv[1:])}` (astronaut × Starry "
            f"Night; each a fresh process, start-up included; the pictures side by side in "
            f"outputs/demo_comparison.png):\n\n" + "\n".join(rows)
        )
        write_section(REPO / "BENCHMARKS.md", "Demo", body)


if __name__ == "__main__":
    main()
