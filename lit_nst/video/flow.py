"""Optical flow between frames, warping along it, and where it can be trusted (Ruder et al. 2016, section 3.2).

The flow is OpenCV's DIS (Kroeger et al. 2016): classical, so it needs no downloaded weights, and fast on
a CPU (a few ms for a 256-px pair), which keeps the flow a small share of a clip's time.
"""

import cv2
import numpy as np
import torch
from torch import Tensor
from torch.nn.functional import grid_sample


def optical_flow(source: Tensor, target: Tensor) -> Tensor:
    """(2, h, w) flow (x, y) in pixels such that source(p) ≈ target(p + flow(p)), for (3, h, w) frames in [0, 1]."""
    estimator = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    flow = estimator.calc(_grey(source), _grey(target), None)  # (h, w, 2)
    return torch.from_numpy(flow).permute(2, 0, 1).contiguous()


def _grey(frame: Tensor) -> np.ndarray:
    weights = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
    return (frame.float().cpu() * weights).sum(0).mul(255).round().clamp(0, 255).to(torch.uint8).numpy()


def warp(image: Tensor, flow: Tensor, mode: str = "bilinear") -> Tensor:
    """(…, C, h, w) image sampled at p + flow(p): the picture of the flow's source frame seen from its target."""
    height, width = flow.shape[-2:]
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=flow.dtype, device=flow.device),
        torch.arange(width, dtype=flow.dtype, device=flow.device),
        indexing="ij",
    )
    # grid_sample's coordinates run from -1 to 1 across the pixel centres (align_corners=True).
    x = (xs + flow[0]) * (2 / max(width - 1, 1)) - 1
    y = (ys + flow[1]) * (2 / max(height - 1, 1)) - 1
    grid = torch.stack((x, y), dim=-1)[None].to(image.dtype)
    batched = image.reshape(-1, *image.shape[-3:])
    warped = grid_sample(
        batched, grid.expand(batched.shape[0], -1, -1, -1), mode=mode, padding_mode="border", align_corners=True
    )
    return warped.reshape(image.shape)


def reliable(backward: Tensor, forward: Tensor) -> Tensor:
    """(1, h, w) 1 where the backward flow (frame t -> t-1) can be trusted, 0 at disocclusions, motion boundaries
    and where it points out of the frame (what a pan brings in was never painted).

    Ruder et al.'s criteria: the forward flow, seen from frame t, must undo the backward one
    (|w + ŵ|² ≤ 0.01 (|w|² + |ŵ|²) + 0.5), and the flow must not change abruptly
    (|∇u|² + |∇v|² ≤ 0.01 |w|² + 0.002).
    """
    undone = warp(forward, backward)  # ŵ(p) = forward flow at p + w(p)
    consistent = (backward + undone).square().sum(0) <= 0.01 * (backward.square().sum(0) + undone.square().sum(0)) + 0.5
    dy = torch.zeros_like(backward)
    dx = torch.zeros_like(backward)
    dy[:, 1:-1] = (backward[:, 2:] - backward[:, :-2]) / 2
    dx[:, :, 1:-1] = (backward[:, :, 2:] - backward[:, :, :-2]) / 2
    smooth = (dx.square() + dy.square()).sum(0) <= 0.01 * backward.square().sum(0) + 0.002
    height, width = backward.shape[-2:]
    xs = torch.arange(width, dtype=backward.dtype, device=backward.device) + backward[0]
    ys = torch.arange(height, dtype=backward.dtype, device=backward.device)[:, None] + backward[1]
    inside = (xs >= 0) & (xs <= width - 1) & (ys >= 0) & (ys <= height - 1)
    return (consistent & smooth & inside).float()[None]


def warping_error(
    frames: list[Tensor], inputs: list[Tensor], flows: list[tuple[Tensor, Tensor]] | None = None
) -> float:
    """Flicker as Lai et al. (ECCV 2018) measure it: the mean over frames t of the reliable pixels' squared difference
    between frame t and frame t-1 warped by the input's flow. `flows[t-1]` is (flow t -> t-1, reliability)."""
    flows = flows or frame_flows(inputs)
    errors = []
    for t in range(1, len(frames)):
        flow, mask = flows[t - 1]
        difference = (frames[t].float() - warp(frames[t - 1].float(), flow)).square().sum(0, keepdim=True)
        errors.append(float((difference * mask).sum() / (mask.sum() * 3).clamp(min=1)))
    return sum(errors) / len(errors)


def frame_flows(frames: list[Tensor]) -> list[tuple[Tensor, Tensor]]:
    """For each frame t ≥ 1: (the flow from t to t-1, where it is reliable)."""
    pairs = []
    for previous, current in zip(frames, frames[1:], strict=False):
        backward = optical_flow(current, previous)
        pairs.append((backward, reliable(backward, optical_flow(previous, current))))
    return pairs
