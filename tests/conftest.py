"""Shared fixtures: random VGG weights for unit tests, the real material in ../shared for end-to-end ones."""

from pathlib import Path

import pytest
import torch
from PIL import Image

from .helpers import random_vgg_state


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
