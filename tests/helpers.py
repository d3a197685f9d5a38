"""Running `lit-nst` from tests: in-process through `cli_main` or the console script's `main`, or as a real
subprocess where the process is the point (the installed script, signals, DDP launches)."""

import logging
import math
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml

from lit_nst.backbone import conv_shapes
from lit_nst.cli import StyleTransferCLI, cli_main, main

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
    """`lit-nst ...` in this process through the console script's `main` (its error handling and exit status),
    what it printed read at the file descriptors: Lightning's log handlers hold the stderr of their import."""
    capfd.readouterr()
    argv, sys.argv = sys.argv, ["lit-nst", *map(str, args)]
    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "200"  # as run_lit_nst: a table is not folded to pytest's terminal
    # Outside pytest, `import lightning` gives its loggers a stderr handler of their own and stops them propagating;
    # under pytest (whose root logger has handlers by then) it does neither, and its info lines would go unseen.
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    handlers = [logging.StreamHandler(sys.stderr) for _ in loggers]
    propagate = [logger.propagate for logger in loggers]
    for logger, handler in zip(loggers, handlers, strict=True):
        logger.addHandler(handler)
        logger.propagate = False
    try:
        main()
        returncode = 0
    except SystemExit as exit:
        returncode = exit.code if isinstance(exit.code, int) else int(exit.code is not None)
    finally:
        sys.argv = argv
        for logger, handler, old in zip(loggers, handlers, propagate, strict=True):
            logger.removeHandler(handler)
            logger.propagate = old
        if columns is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = columns
    out, err = capfd.readouterr()
    return Outcome(returncode, out, err)


def run_lit_nst(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`lit-nst ...` as a real process, as a user would run it."""
    script = Path(sys.executable).with_name("lit-nst")
    env = {**os.environ, "COLUMNS": "200"}
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
