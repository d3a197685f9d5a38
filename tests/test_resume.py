"""Interrupted optimisations resume exactly, and no fault loses work (issue: resume and faults)."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from .helpers import STYLE, fit, job, require_shared, run_lit_nst

OPTIMIZERS = {
    "LBFGS": ["--optimizer", "LBFGS", "--optimizer.lr", "1", "--optimizer.max_iter", "1"],
    "Adam": ["--optimizer", "Adam", "--optimizer.lr", "0.02"],
}


def last_checkpoint(root: Path) -> dict:
    return torch.load(root / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_twenty_steps_then_resume_to_forty_equals_forty_straight(tmp_path, optimizer):
    settings = [*job(), *OPTIMIZERS[optimizer], "--checkpoint.every_n_steps", "7"]
    interrupted, straight = tmp_path / "interrupted", tmp_path / "straight"
    fit(interrupted, *settings, "--trainer.max_steps", "20", "--output.path", interrupted / "out.png")
    assert last_checkpoint(interrupted)["global_step"] == 20  # the end of a run writes last, 20 % 7 != 0
    fit(interrupted, *settings, "--trainer.max_steps", "40", "--output.path", interrupted / "out.png",
        "--ckpt_path", "last")  # fmt: skip
    fit(straight, *settings, "--trainer.max_steps", "40", "--output.path", straight / "out.png")
    resumed, uninterrupted = last_checkpoint(interrupted), last_checkpoint(straight)
    assert resumed["global_step"] == uninterrupted["global_step"] == 40
    difference = (resumed["state_dict"]["target"] - uninterrupted["state_dict"]["target"]).abs().max().item()
    assert difference <= 1 / 255
    assert difference == 0.0  # float32 on the CPU: exactly the same arithmetic


def test_checkpoints_live_in_a_fixed_place_and_hold_no_vgg(tmp_path):
    for _ in range(2):
        fit(tmp_path, *job(), "--trainer.max_steps", "3", "--output.path", tmp_path / "out.png")
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["last.ckpt"]
    checkpoint = last_checkpoint(tmp_path)
    assert list(checkpoint["state_dict"]) == ["target"]
    assert checkpoint["lit_nst"]["identity"]["data.size"] == 48


def test_ckpt_path_last_without_a_checkpoint_starts_fresh_and_says_so(tmp_path, capsys):
    cli = fit(tmp_path, *job(), "--trainer.max_steps", "2", "--output.path", tmp_path / "o.png", "--ckpt_path", "last")
    assert cli.trainer.global_step == 2
    assert "starting fresh" in capsys.readouterr().err


def test_resuming_a_finished_run_says_so_and_rewrites_the_image(tmp_path, capsys):
    output = tmp_path / "out.png"
    fit(tmp_path, *job(), "--trainer.max_steps", "3", "--output.path", output)
    output.unlink()
    cli = fit(tmp_path, *job(), "--trainer.max_steps", "3", "--output.path", output, "--ckpt_path", "last")
    assert cli.trainer.global_step == 3
    assert "already at step 3" in capsys.readouterr().err
    assert output.is_file()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (["--data.size", "40"], "--data.size"),
        (["--data.style", "STYLE"], "image files' contents"),
        (["--data.content_mask", "MASK"], "image files' contents"),
        (["--model.arch", "vgg16", "--model.weights", "VGG16", "--model.preprocessing", "caffe"], "--model.arch"),
        (["--model.style_weight", "7"], "--model.style_weight"),
        (["--optimizer", "Adam"], "optimised with JobwiseLBFGS"),
    ],
)
def test_resume_of_another_job_stops_before_any_step_naming_the_setting(tmp_path, change, message):
    from .helpers import VGG16_CAFFE

    common = [
        "fit",
        "--trainer.default_root_dir",
        tmp_path,
        "--trainer.max_steps",
        "2",
        "--output.path",
        tmp_path / "o.png",
    ]
    first = run_lit_nst(*common, *job())
    assert first.returncode == 0, first.stderr
    before = (tmp_path / "checkpoints" / "last.ckpt").read_bytes()
    change = [str(require_shared(STYLE / "the_scream.jpg")) if c == "STYLE" else c for c in change]
    change = [str(require_shared(VGG16_CAFFE)) if c == "VGG16" else c for c in change]
    if "MASK" in change:
        Image.new("L", (1024, 768), 255).save(tmp_path / "mask.png")  # tubingen's proportions
        change = [str(tmp_path / "mask.png") if c == "MASK" else c for c in change]
    second = run_lit_nst(*common[:4], "4", *common[5:], *job(), *change, "--ckpt_path", "last")
    assert second.returncode != 0
    assert "Traceback" not in second.stderr
    error = second.stderr.strip().splitlines()[-1]
    assert error.startswith("lit-nst: error: cannot resume") and message in error, error
    assert (tmp_path / "checkpoints" / "last.ckpt").read_bytes() == before


@pytest.mark.parametrize("garbage", [b"", b"not a checkpoint", "truncate"])
def test_a_broken_checkpoint_is_one_line_and_nothing_is_overwritten(tmp_path, garbage):
    fit(tmp_path / "good", *job(), "--trainer.max_steps", "2", "--output.path", tmp_path / "o.png")
    good = (tmp_path / "good" / "checkpoints" / "last.ckpt").read_bytes()
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(good[: len(good) // 2] if garbage == "truncate" else garbage)
    before = broken.read_bytes()
    result = run_lit_nst(
        "fit", *job(), "--trainer.default_root_dir", tmp_path / "run", "--trainer.max_steps", "4",
        "--output.path", tmp_path / "new.png", "--ckpt_path", broken,
    )  # fmt: skip
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "truncated or not a checkpoint" in result.stderr.strip().splitlines()[-1]
    assert broken.read_bytes() == before
    assert not (tmp_path / "new.png").exists()


def test_a_diverging_loss_stops_naming_the_step_and_keeps_the_last_good_work(tmp_path):
    output = tmp_path / "out.png"
    # L-BFGS (not clamped between steps) with an absurd learning rate sends the loss to infinity at once.
    result = run_lit_nst(
        "fit", *job(), "--trainer.default_root_dir", tmp_path, "--trainer.max_steps", "50", "--output.path", output,
        "--optimizer", "LBFGS", "--optimizer.lr", "1e20", "--optimizer.max_iter", "1",
        "--checkpoint.every_n_steps", "1",
    )  # fmt: skip
    assert result.returncode != 0 and "Traceback" not in result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert "the loss became" in error and "at step" in error and "--optimizer.lr" in error, error
    checkpoint = last_checkpoint(tmp_path)
    assert torch.isfinite(checkpoint["state_dict"]["target"]).all()
    assert not output.exists()  # no image of a diverged step


def start_fit(tmp_path: Path, *extra: str) -> subprocess.Popen:
    script = Path(sys.executable).with_name("lit-nst")
    args = [
        str(script), "fit", *job(96), "--trainer.default_root_dir", str(tmp_path), "--trainer.max_steps", "100000",
        "--trainer.enable_progress_bar", "false", "--output.path", str(tmp_path / "out.png"), *extra,
    ]  # fmt: skip
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_saves_checkpoint_and_image_and_says_how_to_resume(tmp_path, signum):
    process = start_fit(tmp_path, "--checkpoint.every_n_steps", "5")
    wait_for(tmp_path / "checkpoints" / "last.ckpt", process)
    time.sleep(1.0)  # a few steps past the first checkpoint
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode != 0
    assert "--ckpt_path last" in stderr and "Traceback" not in stderr, stderr
    step = last_checkpoint(tmp_path)["global_step"]
    assert step > 5 and f"interrupted at step {step}" in stderr  # saved at the interruption, not at the last 5
    assert (tmp_path / "out.png").is_file()
    resumed = fit(
        tmp_path, *job(96), "--trainer.max_steps", str(step + 2), "--output.path", tmp_path / "out.png",
        "--ckpt_path", "last",
    )  # fmt: skip
    assert resumed.trainer.global_step == step + 2


def test_a_hard_kill_during_checkpoint_writes_leaves_last_loadable(tmp_path):
    for delay in (0.3, 0.75, 1.2):
        # A checkpoint every step: the kill very likely lands in a write.
        process = start_fit(tmp_path, "--checkpoint.every_n_steps", "1", "--ckpt_path", "last")
        wait_for(tmp_path / "checkpoints" / "last.ckpt", process)
        time.sleep(delay)
        process.kill()
        process.communicate()
        checkpoint = last_checkpoint(tmp_path)  # loads: the write was atomic
        assert checkpoint["global_step"] > 0
    resumed = fit(
        tmp_path, *job(96), "--trainer.max_steps", str(checkpoint["global_step"] + 1),
        "--output.path", tmp_path / "out.png", "--ckpt_path", "last",
    )  # fmt: skip
    assert resumed.trainer.global_step == checkpoint["global_step"] + 1
    assert not list((tmp_path / "checkpoints").glob(".*.tmp"))  # stale temporaries cleared


def test_save_config_does_not_refuse_a_resume(tmp_path):
    for steps in ("2", "3"):
        cli = fit(
            tmp_path, *job(), "--trainer.max_steps", steps, "--output.path", tmp_path / "o.png", "--ckpt_path", "last"
        )
    assert cli.trainer.global_step == 3


def test_keep_holds_the_latest_periodic_checkpoints_beside_last(tmp_path):
    settings = ["--checkpoint.every_n_steps", "3", "--checkpoint.keep", "2", "--output.path", tmp_path / "o.png"]
    fit(tmp_path, *job(), "--trainer.max_steps", "10", *settings)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["last.ckpt", "step-000006.ckpt", "step-000009.ckpt"]
    resumed = fit(tmp_path, *job(), "--trainer.max_steps", "13", *settings, "--ckpt_path", "last")
    assert resumed.trainer.global_step == 13
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir())[-1] == "step-000012.ckpt"
