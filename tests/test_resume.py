"""Interrupted optimisations resume exactly, and no fault loses work (issue: resume and faults)."""

import errno
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from lit_nst.errors import UsageError
from lit_nst.module import StyleTransfer
from lit_nst.progress import StepProgressBar
from lit_nst.resume import read_checkpoint_record
from lit_nst.runs import RunLock

from .helpers import fit, job, painting, require_vgg16, run_checkpoint, run_main, wait_for_checkpoint

OPTIMIZERS = {
    "JobwiseLBFGS, the default": [],
    "LBFGS": ["--optimizer", "LBFGS", "--optimizer.lr", "1", "--optimizer.max_iter", "1"],
    "Adam": ["--optimizer", "Adam", "--optimizer.lr", "0.02"],
}


LAST = ["--ckpt_path", "last"]


def last_checkpoint(root: Path) -> dict:
    return torch.load(run_checkpoint(root), map_location="cpu", weights_only=False)


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_six_steps_then_resume_to_twelve_equals_twelve_straight(tmp_path, optimizer):
    settings = [*job(), *OPTIMIZERS[optimizer], "--checkpoint.every_n_steps", "4"]
    interrupted, straight = tmp_path / "interrupted", tmp_path / "straight"
    fit(interrupted, *settings, "--trainer.max_steps", "6", "--output.path", interrupted / "out.png")
    assert last_checkpoint(interrupted)["global_step"] == 6  # the end of a run writes last, 6 % 4 != 0
    fit(
        interrupted,
        *settings,
        "--trainer.max_steps",
        "12",
        "--output.path",
        interrupted / "out.png",
        "--ckpt_path",
        "last",
    )
    fit(straight, *settings, "--trainer.max_steps", "12", "--output.path", straight / "out.png")
    resumed, uninterrupted = last_checkpoint(interrupted), last_checkpoint(straight)
    assert resumed["global_step"] == uninterrupted["global_step"] == 12
    difference = (resumed["state_dict"]["target"] - uninterrupted["state_dict"]["target"]).abs().max().item()
    assert difference <= 1 / 255
    assert difference == 0.0  # float32 on the CPU: exactly the same arithmetic


def test_checkpoints_live_in_a_fixed_place_and_hold_no_vgg(tmp_path):
    for _ in range(2):
        fit(tmp_path, *job(), "--trainer.max_steps", "3", "--output.path", tmp_path / "out.png")
    assert sorted(p.name for p in run_checkpoint(tmp_path).parent.iterdir()) == [
        ".lock",
        ".lock.pid",
        "last.ckpt",
        "previous.ckpt",  # the first run's, kept aside as the second started afresh
        "run.json",
    ]
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


@pytest.fixture(scope="module")
def first_run(tmp_path_factory) -> Path:
    """A finished 2-step run of job() whose checkpoint the refusals below are offered (each case gets a copy)."""
    folder = tmp_path_factory.mktemp("first")
    fit(folder, *job(), "--trainer.max_steps", "2", "--output.path", folder / "o.png")
    return folder


def four_steps(capfd, tmp_path: Path, *extra: str):
    """`lit-nst fit` of job() for 4 steps in `tmp_path`, writing `o.png` there, through the console script's main."""
    args = ["--trainer.default_root_dir", tmp_path, "--trainer.max_steps", "4", "--output.path", tmp_path / "o.png"]
    return run_main(capfd, "fit", *args, *job(), *extra)


def copy_of(first_run: Path, tmp_path: Path) -> Path:
    shutil.copytree(first_run / "checkpoints", tmp_path / "checkpoints")
    return run_checkpoint(tmp_path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (["--data.size", "40"], "--data.size"),
        (["--data.style", "STYLE"], "image files' contents"),
        (["--data.content_mask", "MASK"], "the content mask's contents"),
        (["--model.arch", "vgg16", "--model.weights", "VGG16", "--model.preprocessing", "caffe"], "--model.arch"),
        (["--model.style_weight", "7"], "--model.style_weight"),
        (["--model.style_loss", "w2"], "--model.style_loss differs from the checkpoint's (w2 here, gram there)"),
        (["--optimizer", "Adam"], "--optimizer differs"),
    ],
)
def test_resume_of_another_jobs_checkpoint_stops_before_any_step_naming_it(first_run, tmp_path, capfd, change, message):
    checkpoint = copy_of(first_run, tmp_path)
    before = checkpoint.read_bytes()
    change = [painting("the_scream") if c == "STYLE" else c for c in change]
    change = [str(require_vgg16()) if c == "VGG16" else c for c in change]
    if "MASK" in change:
        Image.new("L", (451, 300), 255).save(tmp_path / "mask.png")  # chelsea's proportions
        change = [str(tmp_path / "mask.png") if c == "MASK" else c for c in change]
    second = four_steps(capfd, tmp_path, *change, "--ckpt_path", checkpoint)
    assert second.returncode == 2
    assert "Traceback" not in second.stderr
    error = second.stderr.strip().splitlines()[-1]
    assert error.startswith("lit-nst: error: cannot resume") and message in error, error
    assert checkpoint.read_bytes() == before
    assert not (tmp_path / "o.png").exists()
    assert list(tmp_path.glob("checkpoints/*")) == [checkpoint.parent]  # no folder of its own left behind


def test_ckpt_path_last_of_changed_settings_starts_fresh_naming_them_and_keeps_the_other_run(
    first_run, tmp_path, capfd
):
    checkpoint = copy_of(first_run, tmp_path)
    before = checkpoint.read_bytes()
    args = ["--trainer.max_steps", "2", "--output.path", tmp_path / "o.png", *job(), "--ckpt_path", "last"]
    changed = run_main(capfd, "fit", "--trainer.default_root_dir", tmp_path, *args, "--model.style_weight", "7")
    assert changed.returncode == 0, changed.stderr
    assert (
        f"no checkpoint of this run in {tmp_path / 'checkpoints'}" in changed.stderr
        and f"starting fresh; {checkpoint.parent.name} paints the same pictures with --model.style_weight 50.0 (7.0 "
        "here)"
        in changed.stderr
    ), changed.stderr
    assert checkpoint.read_bytes() == before
    assert len(list(tmp_path.glob("checkpoints/*/last.ckpt"))) == 2


def test_a_fresh_start_over_this_runs_checkpoint_keeps_it_aside(first_run, tmp_path, capfd):
    checkpoint = copy_of(first_run, tmp_path)
    before, previous = checkpoint.read_bytes(), checkpoint.with_name("previous.ckpt")
    args = ["--trainer.max_steps", "1", "--output.path", tmp_path / "o.png", *job()]
    fresh = run_main(capfd, "fit", "--trainer.default_root_dir", tmp_path, *args)
    assert fresh.returncode == 0, fresh.stderr
    assert (
        f"lit-nst: starting afresh; this run's checkpoint at step 2 is kept as {previous} (--ckpt_path with that "
        "file goes on from it)" in fresh.stderr
    )
    assert previous.read_bytes() == before and read_checkpoint_record(checkpoint)["global_step"] == 1
    resumed = run_main(capfd, "fit", "--trainer.default_root_dir", tmp_path, *args, "--ckpt_path", previous)
    assert resumed.returncode == 0 and "already at step 2" in resumed.stderr, resumed.stderr


@pytest.mark.parametrize(
    ("change", "refused"),
    [
        (["--output.fps", "10"], "--output.fps applies to a clip"),  # refused by a callback's setup
        (["--trainer.enable_checkpointing", "false"], None),  # a run that writes no checkpoint to replace it
    ],
)
def test_a_fresh_start_that_cannot_replace_this_runs_checkpoint_leaves_it_where_it_is(
    first_run, tmp_path, capfd, change, refused
):
    checkpoint = copy_of(first_run, tmp_path)
    before = checkpoint.read_bytes()
    args = ["--trainer.max_steps", "1", "--output.path", tmp_path / "o.png", *job(), *change]
    result = run_main(capfd, "fit", "--trainer.default_root_dir", tmp_path, *args)
    assert result.returncode == (0 if refused is None else 2), result.stderr
    assert refused is None or refused in result.stderr.strip().splitlines()[-1]
    assert checkpoint.read_bytes() == before and not checkpoint.with_name("previous.ckpt").exists()
    assert "kept as" not in result.stderr


def test_ctrl_c_after_the_checks_but_before_the_first_step_writes_nothing(tmp_path, capfd, monkeypatch):
    """Lightning sets the model up after the command's checks; an interruption there has nothing to save."""
    picture = tmp_path / "o.png"
    picture.write_bytes(b"an earlier result")
    monkeypatch.setattr(StyleTransfer, "on_fit_start", lambda self: os.kill(os.getpid(), signal.SIGINT))
    args = ["fit", *job(), "--trainer.default_root_dir", tmp_path, "--output.path", picture]
    result = run_main(capfd, *args, "--trainer.max_steps", "3")
    assert result.returncode == 130, result.stderr
    assert result.stderr.splitlines()[-1] == "lit-nst: interrupted before the first step: nothing was written"
    assert "Traceback" not in result.stderr and "Detected" not in result.stderr
    assert picture.read_bytes() == b"an earlier result" and not list(tmp_path.glob("checkpoints/*/*.ckpt"))


def test_runs_of_other_pictures_in_one_folder_keep_and_resume_their_own_checkpoints(tmp_path):
    """Two pictures painted in turn in one folder, each then resumed with --ckpt_path last: each goes on from its
    own checkpoint (the layout before run folders had one last.ckpt, which the second run overwrote)."""
    pictures = {"chelsea": job(), "coffee": job(content="coffee", style="the_scream")}
    for name, flags in pictures.items():
        fit(tmp_path, *flags, "--trainer.max_steps", str(2 + len(name)), "--output.path", tmp_path / f"{name}.png")
    for name, flags in pictures.items():
        resumed = fit(tmp_path, *flags, "--trainer.max_steps", "10", "--output.path", tmp_path / "o.png", *LAST)
        assert resumed.trainer.ckpt_path.startswith(str(tmp_path / "checkpoints" / f"{name}__"))
        assert read_checkpoint_record(Path(resumed.trainer.ckpt_path))["global_step"] == 10  # written by the resume
    assert len(list(tmp_path.glob("checkpoints/*/last.ckpt"))) == 2


def test_a_second_live_process_on_the_same_run_is_refused_in_one_line(first_run, tmp_path, capfd):
    checkpoint = copy_of(first_run, tmp_path)
    before = checkpoint.read_bytes()
    lock = RunLock(checkpoint.parent)
    lock.acquire()  # another descriptor on the lock file: another process, as far as the kernel's lock goes
    try:
        second = four_steps(capfd, tmp_path, *LAST)
    finally:
        lock.release()
    assert second.returncode == 2 and "Traceback" not in second.stderr
    assert second.stderr.strip().splitlines() == [
        f"lit-nst: error: another lit-nst process (pid {os.getpid()}) is writing checkpoints in {checkpoint.parent}: "
        "let it finish (then resume with --ckpt_path last), or give this run another --trainer.default_root_dir"
    ]
    assert checkpoint.read_bytes() == before and (checkpoint.parent / ".lock").exists()
    assert not (tmp_path / "o.png").exists()


@pytest.mark.slow
def test_the_lock_of_a_killed_process_does_not_hold_a_run(first_run, tmp_path):
    folder = copy_of(first_run, tmp_path).parent
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import os, pathlib; from lit_nst.runs import RunLock; "
            f"RunLock(pathlib.Path({str(folder)!r})).acquire(); os.kill(os.getpid(), 9)",
        ],
    )
    assert killed.returncode == -9 and (folder / ".lock").exists()
    resumed = fit(tmp_path, *job(), "--trainer.max_steps", "3", "--output.path", tmp_path / "o.png", *LAST)
    assert resumed.trainer.global_step == 3


class FillingDisk:
    """`os.fdopen` for lit-nst's temporary files named like `.<name>.*.tmp`: after the first `free` of them, each
    takes `room` bytes and then the disk is full, as a real one fails: inside the writer (torch.save's zip writer
    reports it as a RuntimeError raised while handling the OSError)."""

    def __init__(self, name: str, free: int, room: int = 1000) -> None:
        self.name, self.free, self.room, self.fdopen = name, free, room, os.fdopen

    def __call__(self, descriptor: int, *args, **kwargs):
        stream = self.fdopen(descriptor, *args, **kwargs)
        if not Path(os.readlink(f"/proc/self/fd/{descriptor}")).name.startswith(f".{self.name}."):
            return stream
        self.free -= 1
        return stream if self.free >= 0 else Full(stream, self.room)


class Full:
    def __init__(self, stream, room: int) -> None:
        self.stream, self.room = stream, room

    def write(self, data) -> int:
        self.room -= len(data)
        if self.room < 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self.stream.write(data)

    def __getattr__(self, name: str):
        return getattr(self.stream, name)

    def __enter__(self) -> "Full":
        return self

    def __exit__(self, *exception) -> None:
        self.stream.close()


def test_a_full_disk_at_a_checkpoint_is_one_line_keeping_the_last_one_and_the_run_resumes(tmp_path, capfd, monkeypatch):
    args = ["fit", "--trainer.default_root_dir", tmp_path, *job(), "--checkpoint.every_n_steps", "2"]
    args += ["--output.path", tmp_path / "o.png", "--trainer.max_steps", "6", "--ckpt_path", "last"]
    with monkeypatch.context() as patch:
        patch.setattr(os, "fdopen", FillingDisk("last.ckpt", free=1))
        full = run_main(capfd, *args)
    checkpoint = run_checkpoint(tmp_path)
    assert full.returncode == 1 and "Traceback" not in full.stderr, full.stderr
    assert full.stderr.strip().splitlines()[-2:] == [
        f"lit-nst: wrote {tmp_path / 'o.png'}",  # the picture so far, where there is room for it
        f"lit-nst: error: could not write {checkpoint}: No space left on device; make room, then resume with the "
        "same command and --ckpt_path last (it still holds step 2)",
    ]
    assert read_checkpoint_record(checkpoint)["global_step"] == 2
    assert not list(checkpoint.parent.glob(".*.tmp"))
    room = run_main(capfd, *args)  # as the error says
    assert room.returncode == 0 and "resuming at step 2 of 6" in room.stderr, room.stderr
    assert read_checkpoint_record(checkpoint)["global_step"] == 6 and (tmp_path / "o.png").is_file()


def test_a_picture_that_cannot_be_written_is_one_line_and_the_one_before_stays(tmp_path, capfd, monkeypatch):
    picture = tmp_path / "o.png"
    picture.write_bytes(b"the picture before")
    with monkeypatch.context() as patch:
        patch.setattr(os, "fdopen", FillingDisk("o.png", free=0))
        full = run_main(
            capfd,
            "fit",
            "--trainer.default_root_dir",
            tmp_path,
            *job(),
            "--trainer.max_steps",
            "2",
            "--output.path",
            picture,
            "--trainer.enable_checkpointing",
            "false",
        )
    assert full.returncode == 1 and "Traceback" not in full.stderr, full.stderr
    assert full.stderr.strip().splitlines()[-1] == (
        f"lit-nst: error: could not write {picture}: No space left on device; make room, then run again"
    )
    assert picture.read_bytes() == b"the picture before" and list(tmp_path.glob(".o.png.*")) == []


@pytest.mark.parametrize("written", [None, 3, "2"])
def test_a_checkpoint_of_another_format_is_refused_in_one_line(first_run, tmp_path, capfd, written):
    """Format 1 (before "stage" and the format number) and a later one: refused, nothing written."""
    checkpoint = torch.load(run_checkpoint(first_run), weights_only=False)
    record = checkpoint["lit_nst"]
    if written is None:
        del record["format"]
        record["scale_index"] = record.pop("stage")
    else:
        record["format"] = written
    other = tmp_path / "other.ckpt"
    torch.save(checkpoint, other)
    args = [*job(), "--trainer.default_root_dir", tmp_path / "run", "--output.path", tmp_path / "new.png"]
    result = run_main(capfd, "fit", *args, "--trainer.max_steps", "4", "--ckpt_path", other)
    which = {None: "an earlier", 3: "a later", "2": "another"}[written]
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"lit-nst: error: checkpoint {other} is of format {written or 1}, from {which} lit-nst, and this one resumes "
        "format 2: drop --ckpt_path to start afresh"
    )
    assert not (tmp_path / "new.png").exists()
    # Following the refusal's advice, a fresh start in that checkpoint's folder keeps it aside: nothing is lost.
    mine = tmp_path / "mine"
    mine.mkdir()
    other.rename(mine / "last.ckpt")
    before = (mine / "last.ckpt").read_bytes()
    fresh = run_main(capfd, "fit", *args, "--trainer.max_steps", "1", "--checkpoint.dirpath", mine)
    assert fresh.returncode == 0, fresh.stderr
    assert f"this run's checkpoint that this lit-nst cannot resume (another format) is kept as {mine}" in fresh.stderr
    assert (mine / "previous.ckpt").read_bytes() == before


@pytest.mark.parametrize("garbage", [b"", b"not a checkpoint", "truncate"])
def test_a_broken_checkpoint_is_one_line_and_nothing_is_overwritten(first_run, tmp_path, capfd, garbage):
    good = run_checkpoint(first_run).read_bytes()
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(good[: len(good) // 2] if garbage == "truncate" else garbage)
    before = broken.read_bytes()
    result = run_main(
        capfd,
        "fit",
        *job(),
        "--trainer.default_root_dir",
        tmp_path / "run",
        "--trainer.max_steps",
        "4",
        "--output.path",
        tmp_path / "new.png",
        "--ckpt_path",
        broken,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "truncated or not a checkpoint" in result.stderr.strip().splitlines()[-1]
    assert broken.read_bytes() == before
    assert not (tmp_path / "new.png").exists()


def test_a_diverging_loss_stops_naming_the_step_and_keeps_the_last_good_work(tmp_path, capfd):
    output = tmp_path / "out.png"
    # L-BFGS (not clamped between steps) with an absurd learning rate sends the loss to infinity at once.
    result = run_main(
        capfd,
        "fit",
        *job(),
        "--trainer.default_root_dir",
        tmp_path,
        "--trainer.max_steps",
        "50",
        "--output.path",
        output,
        "--optimizer",
        "LBFGS",
        "--optimizer.lr",
        "1e20",
        "--optimizer.max_iter",
        "1",
        "--checkpoint.every_n_steps",
        "1",
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert "the loss became" in error and "at step" in error and "--optimizer.lr" in error, error
    checkpoint = last_checkpoint(tmp_path)
    assert torch.isfinite(checkpoint["state_dict"]["target"]).all()
    assert not output.exists()  # no image of a diverged step


def wait_until_stopped(process: subprocess.Popen) -> None:
    """Until the kernel says the process is stopped (state T in /proc/PID/stat)."""
    deadline = time.monotonic() + 10
    while Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "T":
        assert time.monotonic() < deadline, "the process did not stop"


def start_fit(tmp_path: Path, *extra: str) -> subprocess.Popen:
    script = Path(sys.executable).with_name("lit-nst")
    args = [
        str(script),
        "fit",
        *job(96),
        "--trainer.default_root_dir",
        str(tmp_path),
        "--trainer.max_steps",
        "100000",
        "--trainer.enable_progress_bar",
        "false",
        "--output.path",
        str(tmp_path / "out.png"),
        *extra,
    ]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_saves_checkpoint_and_image_and_says_how_to_resume(tmp_path, signum):
    process = start_fit(tmp_path, "--checkpoint.every_n_steps", "5")
    wait_for_checkpoint(tmp_path, process)
    time.sleep(1.0)  # a few steps past the first checkpoint
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signum  # the shell's convention: 130 after Ctrl-C, 143 after SIGTERM
    assert "--ckpt_path last" in stderr and "Traceback" not in stderr and "Detected" not in stderr, stderr
    step = last_checkpoint(tmp_path)["global_step"]
    assert step > 5 and f"interrupted at step {step}" in stderr  # saved at the interruption, not at the last 5
    assert (tmp_path / "out.png").is_file()
    # The picture so far, then how to go on: the last lines.
    wrote, resume = stderr.splitlines()[-2:]
    assert wrote == f"lit-nst: wrote {tmp_path / 'out.png'}" and "--ckpt_path last" in resume, stderr
    resumed = fit(
        tmp_path,
        *job(96),
        "--trainer.max_steps",
        str(step + 2),
        "--output.path",
        tmp_path / "out.png",
        "--ckpt_path",
        "last",
    )
    assert resumed.trainer.global_step == step + 2


@pytest.mark.slow
@pytest.mark.parametrize("after", [0.6, 2.0])
def test_ctrl_c_during_start_up_is_one_line_and_130(tmp_path, after):
    """While torch is imported (0.6 s: past the interpreter's own start-up, slow on a loaded machine) or Lightning
    and the model are set up (2 s): no traceback, nothing written."""
    process = start_fit(tmp_path)
    time.sleep(after)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and stderr.splitlines()[-1].startswith("lit-nst: interrupted"), stderr
    assert not list(tmp_path.glob("checkpoints/*/*.ckpt"))


@pytest.mark.slow
def test_two_pictures_painted_at_once_in_one_folder_both_finish_and_resume_from_their_own(tmp_path):
    pictures = {"chelsea": job(), "coffee": job(content="coffee", style="the_scream")}
    script = Path(sys.executable).with_name("lit-nst")
    common = ["--trainer.default_root_dir", tmp_path, "--trainer.max_steps", "8", "--checkpoint.every_n_steps", "2"]
    common += ["--trainer.enable_progress_bar", "false"]
    processes = {
        name: subprocess.Popen(
            [script, "fit", *flags, *common, "--output.path", tmp_path / f"{name}.png"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, flags in pictures.items()
    }
    for process in processes.values():
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr
    for name, flags in pictures.items():
        resumed = fit(tmp_path, *flags, "--trainer.max_steps", "10", "--output.path", tmp_path / "o.png", *LAST)
        assert resumed.trainer.ckpt_path.startswith(str(tmp_path / "checkpoints" / f"{name}__"))
        assert read_checkpoint_record(Path(resumed.trainer.ckpt_path))["global_step"] == 10


@pytest.mark.slow
def test_a_run_started_while_the_same_one_is_live_is_refused_and_resumes_once_it_stops(tmp_path, capfd):
    live = start_fit(tmp_path, "--checkpoint.every_n_steps", "2")
    wait_for_checkpoint(tmp_path, live)
    args = ["fit", *job(96), "--trainer.default_root_dir", tmp_path, "--output.path", tmp_path / "out.png", *LAST]
    second = run_main(capfd, *args, "--trainer.max_steps", "100000")
    assert second.returncode == 2, second.stderr
    assert second.stderr.strip().splitlines() == [
        f"lit-nst: error: another lit-nst process (pid {live.pid}) is writing checkpoints in "
        f"{run_checkpoint(tmp_path).parent}: let it finish (then resume with --ckpt_path last), or give this run "
        "another --trainer.default_root_dir"
    ]
    live.send_signal(signal.SIGTERM)
    live.communicate(timeout=120)
    assert live.returncode == 128 + signal.SIGTERM
    step = last_checkpoint(tmp_path)["global_step"]
    again = run_main(capfd, *args, "--trainer.max_steps", str(step + 1), "--trainer.enable_progress_bar", "false")
    assert again.returncode == 0 and f"resuming at step {step} of {step + 1}" in again.stderr, again.stderr


@pytest.mark.slow
def test_a_hard_kill_during_a_checkpoint_write_leaves_last_loadable(tmp_path):
    # A checkpoint every step; the kill lands while a write's temporary file is there, i.e. mid-write. The process
    # is stopped first and the file looked for again: on a busy machine a write can end between a look and a kill.
    process = start_fit(tmp_path, "--checkpoint.every_n_steps", "1")
    wait_for_checkpoint(tmp_path, process)
    checkpoints = run_checkpoint(tmp_path).parent
    deadline = time.monotonic() + 120
    while True:
        assert process.poll() is None and time.monotonic() < deadline, "no write was caught in progress"
        if list(checkpoints.glob(".*.tmp")):
            process.send_signal(signal.SIGSTOP)
            wait_until_stopped(process)  # a signal lands some time after it is sent
            if list(checkpoints.glob(".*.tmp")):
                break
            process.send_signal(signal.SIGCONT)
    process.kill()
    process.communicate()
    assert list(checkpoints.glob(".*.tmp")), "the kill did not land in a write"
    checkpoint = last_checkpoint(tmp_path)  # loads: the write in progress never replaced it
    assert checkpoint["global_step"] > 0
    resumed = fit(
        tmp_path,
        *job(96),
        "--trainer.max_steps",
        str(checkpoint["global_step"] + 1),
        "--output.path",
        tmp_path / "out.png",
        "--ckpt_path",
        "last",
    )
    assert resumed.trainer.global_step == checkpoint["global_step"] + 1
    assert not list(checkpoints.glob(".*.tmp"))  # stale temporaries cleared


def test_save_config_does_not_refuse_a_resume(tmp_path):
    for steps in ("2", "3"):
        cli = fit(
            tmp_path, *job(), "--trainer.max_steps", steps, "--output.path", tmp_path / "o.png", "--ckpt_path", "last"
        )
    assert cli.trainer.global_step == 3


def test_keep_holds_the_latest_periodic_checkpoints_beside_last(tmp_path):
    settings = ["--checkpoint.every_n_steps", "3", "--checkpoint.keep", "2", "--output.path", tmp_path / "o.png"]
    fit(tmp_path, *job(), "--trainer.max_steps", "10", *settings)
    names = sorted(p.name for p in run_checkpoint(tmp_path).parent.glob("*.ckpt"))
    assert names == ["last.ckpt", "step-000006.ckpt", "step-000009.ckpt"]
    resumed = fit(tmp_path, *job(), "--trainer.max_steps", "13", *settings, "--ckpt_path", "last")
    assert resumed.trainer.global_step == 13
    assert sorted(p.name for p in run_checkpoint(tmp_path).parent.glob("*.ckpt"))[-1] == "step-000012.ckpt"


def test_a_resume_with_another_learning_rate_or_history_applies_them_and_says_so(tmp_path, capsys):
    settings = [*job(), "--output.path", tmp_path / "o.png"]
    fit(tmp_path, *settings, "--trainer.max_steps", "6")
    cli = fit(
        tmp_path,
        *settings,
        "--trainer.max_steps",
        "8",
        "--optimizer",
        "lit_nst.optim.JobwiseLBFGS",
        "--optimizer.lr",
        "0.5",
        "--optimizer.history_size",
        "3",
        "--ckpt_path",
        "last",
    )
    err = capsys.readouterr().err
    assert "--optimizer.lr 0.5 (the checkpoint's was 1.0)" in err, err
    assert "--optimizer.history_size 3 (the checkpoint's was 100)" in err, err
    optimizer = cli.model.optimizers().optimizer
    assert optimizer.param_groups[0]["lr"] == 0.5
    (job_optimizer,) = optimizer._jobs
    assert job_optimizer.param_groups[0]["lr"] == 0.5 and job_optimizer.param_groups[0]["history_size"] == 3
    (state,) = job_optimizer.state.values()
    assert len(state["old_dirs"]) == 3  # the newest pairs kept


def test_weights_given_as_a_path_are_identified_by_their_content(tmp_path, random_weights):
    weights = tmp_path / "weights.pth"
    weights.write_bytes(random_weights["vgg19"].read_bytes())
    settings = [*job(), "--model.weights", weights, "--model.style_weight", "1e6", "--output.path", tmp_path / "o.png"]
    fit(tmp_path, *settings, "--trainer.max_steps", "2")
    moved = tmp_path / "moved.pth"
    weights.rename(moved)
    moved_settings = [moved if item == weights else item for item in settings]
    assert fit(tmp_path, *moved_settings, "--trainer.max_steps", "3", "--ckpt_path", "last").trainer.global_step == 3
    state = torch.load(moved, weights_only=True)
    state["features.0.bias"] = state["features.0.bias"] + 1
    torch.save(state, moved)
    with pytest.raises(UsageError, match="--model.weights differs"):
        fit(tmp_path, *moved_settings, "--trainer.max_steps", "4", "--ckpt_path", run_checkpoint(tmp_path))


@pytest.mark.parametrize(
    ("first", "second", "named"),
    [
        (["--data.style_blend", "[0.5,0.5]"], ["--data.style_blend", "[0.7,0.3]"], "--data.style_blend"),
        (["--data.pairs", "product"], ["--data.pairs", "zip"], "the jobs (--data.content, --data.style, --data.pairs)"),
    ],
)
def test_a_resume_with_another_blend_or_pairing_names_that_setting(tmp_path, first, second, named):
    styles = ["--data.style", f"[{painting('starry_night')},{painting('the_scream')}]"]
    contents = ["--data.content", f"[{job()[1]},{painting('woman-with-hat-matisse')}]"]
    settings = [*contents, *styles, "--data.size", "32", "--output.dir", tmp_path / "out"]
    fit(tmp_path, *settings, *first, "--trainer.max_steps", "2")
    with pytest.raises(UsageError, match=re.escape(named)) as raised:
        fit(tmp_path, *settings, *second, "--trainer.max_steps", "3", "--ckpt_path", run_checkpoint(tmp_path))
    assert "sha256" not in str(raised.value)


def test_max_steps_with_a_schedule_stops_it_early_and_says_so_and_unset_runs_it_whole(tmp_path, capsys):
    schedule = [*job(), "--data.scales", "[32,48]", "--data.steps", "[3,4]", "--output.path", tmp_path / "o.png"]
    assert fit(tmp_path / "whole", *schedule).trainer.global_step == 7
    cut = fit(tmp_path / "cut", "--config", "configs/gatys.yaml", *schedule, "--trainer.max_steps", "5")
    assert cut.trainer.global_step == 5
    assert "--trainer.max_steps 5 stops the schedule early" in capsys.readouterr().err
    fit(tmp_path / "long", *schedule, "--trainer.max_steps", "500")
    assert "is beyond the schedule's end" in capsys.readouterr().err


def test_an_input_file_is_read_for_its_hash_once_while_it_is_unchanged(tmp_path, monkeypatch):
    """Checkpoints are written every few steps and each names its inputs by hash: reading the files once will do."""
    from lit_nst.files import file_sha256

    path = tmp_path / "photo.png"
    path.write_bytes(b"first")
    reads, read_bytes = [], Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: reads.append(self) or read_bytes(self))
    first = file_sha256(path)
    assert file_sha256(path) == first and len(reads) == 1
    path.write_bytes(b"second!")  # another size: a new hash even within the file clock's resolution
    assert file_sha256(path) != first and len(reads) == 2


def test_the_bar_of_a_run_resumed_mid_run_is_there_at_its_first_step_counting_from_it(tmp_path, monkeypatch):
    # Lightning makes its bar as an epoch starts, and a resume from a checkpoint taken mid-run starts none.
    settings = [
        *job(32),
        "--checkpoint.every_n_steps",
        "2",
        "--checkpoint.keep",
        "-1",
        "--output.path",
        tmp_path / "o.png",
    ]
    fit(tmp_path, *settings, "--trainer.max_steps", "4")
    seen = []
    first_batch_start = StepProgressBar.on_train_batch_start

    def spy(self, trainer, *args):
        bars = [task for task in self.progress.tasks if task.description == "Stylizing"] if self.progress else []
        seen.append((bars[0].completed, bars[0].total) if bars else None)
        return first_batch_start(self, trainer, *args)

    monkeypatch.setattr(StepProgressBar, "on_train_batch_start", spy)
    midway = run_checkpoint(tmp_path, "step-000002.ckpt")
    fit(tmp_path, *settings, "--trainer.max_steps", "6", "--ckpt_path", midway, "--trainer.enable_progress_bar", "true")
    assert seen[0] == (2, 6), seen
