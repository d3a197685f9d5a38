"""Where an optimisation starts: the photo, noise or a white canvas, for each job on its own."""

import hashlib
import json
from typing import Literal

import torch
from torch import Tensor

from lit_nst.errors import UsageError

Init = Literal["content", "noise", "white"]


def initial_image(init: Init, content: Tensor, seed: int) -> Tensor:
    """The starting point of one job's optimisation, shaped like its `content` (3, h, w)."""
    if init == "content":
        return content.clone()
    if init == "noise":
        generator = torch.Generator(device=content.device).manual_seed(seed)
        noise = torch.randn(content.shape, generator=generator, device=content.device, dtype=content.dtype)
        return (0.5 + 0.15 * noise).clamp(0.0, 1.0)
    if init == "white":
        return torch.ones_like(content)
    raise UsageError(f"unknown --model.init {init!r}: use content, noise or white")


def job_seed(run_seed: int, job_identity: dict) -> int:
    """The seed of a job's noise: the run's (`--seed_everything`) and the job's own, not its place among others."""
    text = json.dumps([run_seed, job_identity], sort_keys=True, default=str)
    return int(hashlib.sha256(text.encode()).hexdigest()[:15], 16)
