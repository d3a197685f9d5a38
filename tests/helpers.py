"""Running `lit-nst` from tests: in-process through `cli_main`, or as a real subprocess."""

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lit_nst.backbone import conv_shapes
from lit_nst.cli import StyleTransferCLI, cli_main

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
VGG16_CAFFE = SHARED / "weights" / "vgg16-caffe-features.pth"
CONTENT = SHARED / "images" / "content"
STYLE = SHARED / "images" / "style"


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


def run_lit_nst(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`lit-nst ...` as a real process, as a user would run it."""
    script = Path(sys.executable).with_name("lit-nst")
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [str(script), *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=timeout, env=env
    )


def photo(name: str) -> str:
    """A test photograph from ../shared, by stem."""
    return str(require_shared(CONTENT / f"{name}.jpg"))


def painting(name: str) -> str:
    """A public-domain painting from ../shared, by stem."""
    return str(require_shared(STYLE / f"{name}.jpg"))


def job(size: int = 48, content: str = "tubingen", style: str = "starry_night") -> list[str]:
    """The flags of one job on the shared test photo and painting, by stem."""
    return ["--data.content", photo(content), "--data.style", painting(style), "--data.size", str(size)]


def require_shared(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is missing: these tests need the project's ../shared folder")
    return path
