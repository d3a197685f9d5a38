"""Running `lit-nst` from tests: in-process through `cli_main` or the console script's `main`, or as a real
subprocess where the process is the point (the installed script, signals, DDP launches)."""

import contextlib
import logging
import math
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest
import torch
import yaml

from lit_nst.cli import StyleTransferCLI, cli_main
from lit_nst.console import main
from lit_nst.objective.backbone import conv_shapes

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "assets"  # public-domain photos and paintings shipped with the project
VGG16_CAFFE = REPO.parent / "shared" / "weights" / "vgg16-caffe-features.pth"  # only in CI and developers' trees


def random_vgg_state(arch: str, prefix: str = "features.", seed: int = 0) -> dict[str, torch.Tensor]:
    """He-initialised VGG conv weights keyed like torchvision's state dict."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for index, shape in conv_shapes(arch).items():
        fan_in = shape[1] * 9
        state[f"{prefix}{index}.weight"] = torch.randn(shape, generator=generator) * math.sqrt(2 / fan_in)
        state[f"{prefix}{index}.bias"] = torch.randn(shape[0], generator=generator) * 0.01
    return state


QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def fit(tmp_path: Path, *args: str) -> StyleTransferCLI:
    """`lit-nst fit ...` in this process, logs under tmp_path; returns the CLI (its .model, .trainer)."""
    return cli_main(["fit", "--trainer.default_root_dir", str(tmp_path), *QUIET, *map(str, args)])


@dataclass
class Outcome:
    """What a user sees of one `lit-nst` command: its exit status and what it printed."""

    returncode: int
    stdout: str
    stderr: str


def run_main(capfd: pytest.CaptureFixture, *args: str) -> Outcome:
    """`lit-nst ...` in this process through the console script's `main` (its error handling, its exit status), and
    what it printed, read at the file descriptors, with what a process of its own would print besides: under
    pytest, Lightning's loggers have no handler of their own, other loggers' warnings reach pytest's handlers
    instead of Python's last resort, and pytest records the warnings that Python would print."""
    capfd.readouterr()
    with (
        mock.patch.object(sys, "argv", ["lit-nst", *map(str, args)]),
        mock.patch.dict(os.environ, {"COLUMNS": "200"}),  # as run_lit_nst: a table not folded to pytest's terminal
        warnings.catch_warnings(record=True) as caught,
        logged_to_stderr(),
    ):
        warnings.resetwarnings()
        for action, category, module in PYTHON_WARNING_FILTERS:
            warnings.filterwarnings(action, category=category, module=module, append=True)
        try:
            main()
            returncode = 0
        except SystemExit as exit:
            returncode = exit.code if isinstance(exit.code, int) else int(exit.code is not None)
    out, err = capfd.readouterr()
    err += "".join(warnings.formatwarning(w.message, w.category, w.filename, w.lineno, w.line) for w in caught)
    return Outcome(returncode, out, err)


# The warning filters of a Python started without -W (the `warnings` module's documentation, "Default Warning
# Filter"), which the console script runs under.
PYTHON_WARNING_FILTERS = [
    ("default", DeprecationWarning, "__main__"),
    ("ignore", DeprecationWarning, ""),
    ("ignore", PendingDeprecationWarning, ""),
    ("ignore", ImportWarning, ""),
    ("ignore", ResourceWarning, ""),
]


@contextlib.contextmanager
def logged_to_stderr() -> Iterator[None]:
    """Log records on stderr as in a process of its own: Lightning's through a handler of their own (its import
    gives them one, outside pytest), the warnings of every other logger as Python's last-resort handler does."""
    lightning = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    root = logging.getLogger()
    last_resort = logging.StreamHandler(sys.stderr)
    last_resort.setLevel(logging.WARNING)
    handlers = [logging.StreamHandler(sys.stderr) for _ in lightning]
    propagate = [logger.propagate for logger in lightning]
    for logger, handler in zip(lightning, handlers, strict=True):
        logger.addHandler(handler)
        logger.propagate = False
    root.addHandler(last_resort)
    try:
        yield
    finally:
        root.removeHandler(last_resort)
        for logger, handler, old in zip(lightning, handlers, propagate, strict=True):
            logger.removeHandler(handler)
            logger.propagate = old


def ddp(processes: int) -> list[str]:
    """The flags of a run on `processes` CPU processes under DDP."""
    return ["--trainer.accelerator", "cpu", "--trainer.devices", str(processes), "--trainer.strategy", "ddp"]


def run_lit_nst(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`lit-nst ...` as a real process, as a user would run it."""
    script = Path(sys.executable).with_name("lit-nst")
    env = {**os.environ, "COLUMNS": "200"}  # a table not folded to pytest's terminal
    return subprocess.run(
        [str(script), *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=timeout, env=env
    )


def photo(name: str) -> str:
    """A bundled photograph (assets/), by stem: chelsea, coffee or astronaut."""
    return str(bundled(name))


def painting(name: str) -> str:
    """A bundled public-domain painting (assets/), by stem: starry_night, the_scream, woman-with-hat-matisse."""
    return str(bundled(name))


def bundled(name: str) -> Path:
    path = ASSETS / f"{name}.jpg"
    assert path.is_file(), f"{path} is part of the repository"
    return path


def job(size: int = 48, content: str = "chelsea", style: str = "starry_night") -> list[str]:
    """The flags of one job on a bundled photo and painting, by stem."""
    return ["--data.content", photo(content), "--data.style", painting(style), "--data.size", str(size)]


def run_checkpoint(root: Path, name: str = "last.ckpt") -> Path:
    """A checkpoint of the one run kept under `root` (each run has its folder in `checkpoints/`: lit_nst.runs)."""
    folders = [folder for folder in (root / "checkpoints").glob("*") if folder.is_dir()]
    assert len(folders) == 1, folders
    return folders[0] / name


def wait_for_checkpoint(root: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    """Until the run under `root` has written its first checkpoint."""
    deadline = time.monotonic() + timeout
    while not list(root.glob("checkpoints/*/last.ckpt")):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"no checkpoint appeared under {root}"
        time.sleep(0.1)


def require_vgg16() -> Path:
    """The real VGG16 file of ../shared; the tests that need it skip, naming it, where it is absent."""
    if not VGG16_CAFFE.exists():
        pytest.skip(f"{VGG16_CAFFE} is missing: this test needs the real VGG16 weights file of ../shared")
    return VGG16_CAFFE


def config_scales(config: Path) -> list[int] | None:
    """A config file's coarse-to-fine schedule (--data.scales), if it has one."""
    return ((yaml.safe_load(config.read_text()) or {}).get("data") or {}).get("scales")


def stretched_size(first: int, scales: list[int] | None) -> int:
    """The --data.size that stretches a schedule of `scales` to start at `first` px (without one: `first`)."""
    return first * scales[-1] // scales[0] if scales else first
