"""Shared fixtures: random VGG weights for unit tests, small images; one machine's CPU for every machine."""

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from PIL import Image

from .helpers import random_vgg_state


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--native-bf16",
        action="store_true",
        help="run as on a CPU with native bfloat16 (where an unset --trainer.precision is bf16-mixed)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """The default precision follows the CPU (lit_nst.precision): the suite takes one CPU's answer, a CPU without
    native bfloat16 unless --native-bf16, so that its outcome is the same on every machine. Set in the environment,
    the answer reaches the `lit-nst` processes that tests start too."""
    folder = Path(tempfile.mkdtemp(prefix="lit-nst-cpu-"))
    config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))
    os.environ["LIT_NST_CPUINFO"] = str(write_cpuinfo(folder / "cpuinfo", config.getoption("--native-bf16")))
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        # pytest -n N: the cores shared between the workers (and the `lit-nst` processes they start), not each
        # worker's torch starting as many threads as there are cores.
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        threads = str(max(1, cores // workers))
        os.environ["OMP_NUM_THREADS"] = threads
        torch.set_num_threads(int(threads))


@pytest.fixture(autouse=True, scope="session")
def no_pytest_arguments():
    """In-process runs read their arguments from the list they are given, never pytest's own (LightningCLI warns
    where both are there)."""
    argv, sys.argv = sys.argv, sys.argv[:1]
    yield
    sys.argv = argv


@pytest.fixture(scope="session")
def random_weights(tmp_path_factory) -> dict[str, Path]:
    """{arch: path to a random state dict for it}."""
    folder = tmp_path_factory.mktemp("weights")
    paths = {}
    for arch in ("vgg16", "vgg19"):
        paths[arch] = folder / f"{arch}-random.pth"
        torch.save(random_vgg_state(arch), paths[arch])
    return paths


@pytest.fixture(scope="session")
def small_images(tmp_path_factory) -> dict[str, Path]:
    """A small photo-like and painting-like image written as files (no dependency on ../shared)."""
    folder = tmp_path_factory.mktemp("images")
    generator = torch.Generator().manual_seed(1)
    paths = {}
    for name, size in (("content", (48, 40)), ("style", (40, 40))):
        pixels = (torch.rand(size[1], size[0], 3, generator=generator) * 255).to(torch.uint8).numpy()
        paths[name] = folder / f"{name}.png"
        Image.fromarray(pixels).save(paths[name])
    return paths


def write_cpuinfo(path: Path, native_bf16: bool) -> Path:
    """A /proc/cpuinfo of an x86 CPU with or without native bfloat16, for LIT_NST_CPUINFO."""
    flags = "fpu sse2 avx2 avx512f avx512_bf16" if native_bf16 else "fpu sse2 avx2"
    path.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    return path


@pytest.fixture(scope="session")
def native_bf16_cpu(tmp_path_factory) -> Path:
    """A /proc/cpuinfo of a CPU with native bfloat16."""
    return write_cpuinfo(tmp_path_factory.mktemp("cpu") / "cpuinfo", native_bf16=True)


@pytest.fixture(scope="session")
def plain_cpu(tmp_path_factory) -> Path:
    """A /proc/cpuinfo of a CPU without native bfloat16."""
    return write_cpuinfo(tmp_path_factory.mktemp("cpu") / "cpuinfo", native_bf16=False)
