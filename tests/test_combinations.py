"""Features against each other at toy size: every documented combination is a promise (issue: review findings).

Each case runs in one process; a case marked `processes` also runs on 2 DDP processes on the CPU and must
give the 1-process images (at most 2/255) and complete, finite metrics for every job; a case marked
`resume` is stopped halfway and resumed, and must end where a straight run ends.
"""

import csv
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from lit_nst.cli import StyleTransferCLI
from lit_nst.images import image_to_tensor, load_image

from .helpers import ddp, fit, painting, photo, run_checkpoint, run_lit_nst, wait_for_checkpoint


def listed(*items: str) -> str:
    return "[" + ",".join(items) + "]"


def half_mask(path: Path, side: str, size: tuple[int, int] = (512, 341)) -> str:
    """White on one half, with coffee's (and chelsea's) 3:2 proportions."""
    width, height = size
    mask = Image.new("L", size, 0)
    mask.paste(255, (0, 0, width // 2, height) if side == "left" else (width // 2, 0, width, height))
    mask.save(path)
    return str(path)


TWO_SHAPES = ["--data.content", listed(photo("chelsea"), photo("astronaut"))]  # 3:2 and square
SCHEDULE = ["--data.scales", "[32,48]", "--data.steps", "[3,3]"]
# Each run twice below: as it is, and in blocks.
THREE_CONTENTS = ["--data.content", listed(photo("chelsea"), photo("coffee"), photo("astronaut"))]
THREE_JOBS_BF16 = [
    *THREE_CONTENTS,
    "--data.style",
    painting("the_scream"),
    "--data.size",
    "32",
    "--trainer.max_steps",
    "6",
    "--trainer.precision",
    "bf16-mixed",
]
REGIONS = [
    "--data.content",
    photo("coffee"),
    "--data.style",
    listed(painting("starry_night"), painting("the_scream")),
    "--data.style_masks",
    listed("{left}", "null"),
    "--data.content_mask",
    "{right}",
    *SCHEDULE,
]
CASES = {
    "two shapes, schedule, L-BFGS": dict(
        flags=[*TWO_SHAPES, "--data.style", painting("starry_night"), *SCHEDULE], processes=True, resume=True
    ),
    "three jobs of two shapes, bf16-mixed": dict(
        flags=[*THREE_JOBS_BF16],
        processes=True,
        resume=False,
    ),
    "regions, content mask, schedule, one job on two processes": dict(
        flags=[*REGIONS],
        processes=True,
        resume=True,
    ),
    "sliced, regions, content mask, schedule": dict(
        flags=[*REGIONS, "--model.style_loss", "sliced"],
        processes=False,
        resume=True,
    ),
    "Adam, two shapes, 32-true, noise start": dict(
        flags=[
            *TWO_SHAPES,
            "--data.style",
            painting("the_scream"),
            "--data.size",
            "40",
            "--trainer.max_steps",
            "6",
            "--optimizer",
            "Adam",
            "--optimizer.lr",
            "0.02",
            "--trainer.precision",
            "32-true",
            "--model.init",
            "noise",
        ],
        processes=True,
        resume=True,
    ),
    "w2, blend, luminance, schedule, bf16-mixed": dict(
        flags=[
            "--model.style_loss",
            "w2",
            "--data.content",
            photo("chelsea"),
            "--data.style",
            listed(painting("starry_night"), painting("the_scream")),
            "--data.style_blend",
            "[0.7,0.3]",
            "--model.color",
            "luminance",
            *SCHEDULE,
            "--trainer.precision",
            "bf16-mixed",
        ],
        processes=False,
        resume=True,
    ),
    "colour match, two styles as two jobs, white start": dict(
        flags=[
            "--data.content",
            photo("chelsea"),
            "--data.style",
            listed(painting("starry_night"), painting("the_scream")),
            "--model.color",
            "match",
            "--model.init",
            "white",
            "--data.size",
            "40",
            "--trainer.max_steps",
            "6",
        ],
        processes=False,
        resume=True,
    ),
    "tiled: regions, content mask, schedule, one picture shared by two processes": dict(
        flags=[
            *REGIONS,
            "--model.tile_size",
            "16",
        ],
        processes=True,
        resume=True,
    ),
    "tiled: w2, regions, content mask, schedule, one picture shared by two processes": dict(
        flags=[
            *REGIONS,
            "--model.style_loss",
            "w2",
            "--model.tile_size",
            "16",
        ],
        processes=True,
        resume=True,
    ),
    "tiled: three jobs of two shapes, luminance, bf16-mixed": dict(
        flags=[
            *THREE_JOBS_BF16,
            "--model.color",
            "luminance",
            "--model.tile_size",
            "16",
        ],
        processes=True,
        resume=True,
    ),
}


def case_flags(name: str, tmp_path: Path) -> list[str]:
    masks = {"left": half_mask(tmp_path / "left.png", "left"), "right": half_mask(tmp_path / "right.png", "right")}
    return [flag.format(**masks) for flag in CASES[name]["flags"]]


def results(folder: Path) -> dict[str, torch.Tensor]:
    return {path.stem: image_to_tensor(load_image(path, "result")) for path in sorted(folder.glob("*.png"))}


def steps_of(flags: list[str]) -> int:
    if "--data.steps" in flags:
        return sum(int(n) for n in flags[flags.index("--data.steps") + 1].strip("[]").split(","))
    return int(flags[flags.index("--trainer.max_steps") + 1])


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    """Each case's one-process run, made once for the tests below that ask for it: (flags, cli, images)."""
    runs = {}

    def run(case: str) -> tuple[list[str], StyleTransferCLI, dict[str, torch.Tensor]]:
        if case not in runs:
            folder = tmp_path_factory.mktemp("one")
            flags = case_flags(case, folder)
            cli = fit(folder, *flags, "--output.dir", folder / "out")
            runs[case] = flags, cli, results(folder / "out")
        return runs[case]

    return run


@pytest.mark.parametrize("case", list(CASES))
def test_features_combine(one_process, case):
    _, one, images = one_process(case)
    jobs = one.datamodule.jobs
    assert sorted(images) == sorted(job.name for job in jobs)
    for job in jobs:
        assert images[job.name].shape[-2:] == job.shape and torch.isfinite(images[job.name]).all()
    assert [row["job"] for row in one.model.quality] == list(range(len(jobs)))
    assert all(math.isfinite(row[key]) for row in one.model.quality for key in ("ssim", "psnr", "style", "tv"))
    assert all(0 < row["ssim"] <= 1 for row in one.model.quality)


@pytest.mark.parametrize("case", [case for case in CASES if CASES[case]["resume"]])
def test_features_combine_and_resume_where_a_straight_run_ends(one_process, tmp_path, case):
    flags, one, _ = one_process(case)
    total = steps_of(flags)
    fit(tmp_path, *flags, "--output.dir", tmp_path / "out", "--trainer.max_steps", str(total // 2 + 1))
    resumed = fit(
        tmp_path, *flags, "--output.dir", tmp_path / "out", "--trainer.max_steps", str(total), "--ckpt_path", "last"
    )
    assert resumed.trainer.global_step == total
    assert torch.equal(resumed.model.target, one.model.target)


@pytest.mark.slow
@pytest.mark.parametrize("case", [case for case in CASES if CASES[case]["processes"]])
def test_features_combine_on_two_processes_as_on_one(one_process, tmp_path, case):
    flags, one, images = one_process(case)
    jobs = one.datamodule.jobs
    result = run_lit_nst(
        "fit",
        *flags,
        *ddp(2),
        "--trainer.default_root_dir",
        tmp_path,
        "--output.dir",
        tmp_path / "out",
        "--trainer.enable_progress_bar",
        "false",
    )
    assert result.returncode == 0, result.stderr
    two = results(tmp_path / "out")
    for name, image in images.items():
        assert (two[name] - image).abs().max() <= 2 / 255, name
    assert all(job.name in result.stdout for job in jobs), result.stdout  # the table lists every job
    (metrics,) = tmp_path.rglob("metrics.csv")
    with metrics.open() as stream:
        (row,) = [row for row in csv.DictReader(stream) if row.get("metrics/ssim")]
    expected = sum(r["ssim"] for r in one.model.quality) / len(jobs)
    assert float(row["metrics/ssim"]) == pytest.approx(expected, abs=0.01)


def start(tmp_path: Path, *flags: str) -> subprocess.Popen:
    command = [
        str(Path(sys.executable).with_name("lit-nst")),
        "fit",
        *flags,
        "--trainer.default_root_dir",
        str(tmp_path),
        "--trainer.enable_progress_bar",
        "false",
    ]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


THREE_JOBS = [
    *THREE_CONTENTS,
    "--data.style",
    painting("starry_night"),
    "--data.size",
    "64",
]


@pytest.mark.slow
@pytest.mark.parametrize("target", ["launcher", "process group"])
def test_sigterm_under_ddp_stops_every_rank_at_one_step_with_checkpoint_and_images(tmp_path, target):
    out = tmp_path / "out"
    process = start(
        tmp_path,
        *THREE_JOBS,
        *ddp(2),
        "--trainer.max_steps",
        "100000",
        "--output.dir",
        out,
        "--checkpoint.every_n_steps",
        "3",
    )
    wait_for_checkpoint(tmp_path, process, timeout=180)
    checkpoint = run_checkpoint(tmp_path)
    time.sleep(1.0)
    if target == "launcher":  # a scheduler that signals the process it started
        process.send_signal(signal.SIGTERM)
    else:  # SLURM's way: every process of the job
        os.killpg(process.pid, signal.SIGTERM)
    try:
        _, stderr = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail("the run hung after SIGTERM")
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "Traceback" not in stderr, stderr
    step = torch.load(checkpoint, map_location="cpu", weights_only=False)["global_step"]
    assert f"interrupted at step {step}" in stderr and "--ckpt_path last" in stderr, stderr
    assert sorted(path.name for path in out.glob("*.png")) == [
        "astronaut__starry_night.png",
        "chelsea__starry_night.png",
        "coffee__starry_night.png",
    ]
    resumed = fit(
        tmp_path, *THREE_JOBS, "--trainer.max_steps", str(step + 1), "--output.dir", out, "--ckpt_path", "last"
    )
    assert resumed.trainer.global_step == step + 1


@pytest.mark.slow
def test_a_loss_that_diverges_on_one_rank_stops_every_rank_with_one_line(tmp_path):
    # At 32 px the style losses at step 0 are 2.2e6 (chelsea, rank 0) and 5.0e6 (coffee, rank 1): a weight of 1e32
    # overflows float32 (3.4e38) on rank 1 only.
    result = run_lit_nst(
        "fit",
        "--data.content",
        listed(photo("chelsea"), photo("coffee")),
        "--data.style",
        listed(painting("starry_night"), painting("the_scream")),
        "--data.pairs",
        "zip",
        "--data.size",
        "32",
        "--model.style_weight",
        "1e32",
        "--trainer.precision",
        "32-true",
        *ddp(2),
        "--trainer.max_steps",
        "5",
        "--trainer.default_root_dir",
        tmp_path,
        "--output.dir",
        tmp_path / "out",
        "--trainer.enable_progress_bar",
        "false",
        timeout=180,
    )
    lines = [line for line in result.stderr.splitlines() if line.startswith("lit-nst: error")]
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "Connection closed" not in result.stderr, result.stderr
    assert len(lines) == 1 and "the loss became non-finite on another process at step 0" in lines[0], result.stderr
