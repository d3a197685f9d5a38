"""How much memory a run will need, estimated before the first step from the shapes alone."""

from pathlib import Path

import torch
from torch import nn

from lit_nst.objective.backbone import VGGFeatures
from lit_nst.optim import JobwiseLBFGS

GIB = 1024**3


def activation_elements(backbone: VGGFeatures, height: int, width: int) -> tuple[int, int]:
    """(all layer outputs kept for the backward pass, the largest one) of one image, in elements."""
    total = largest = 0
    channels = 3
    for layer in backbone.features:
        if isinstance(layer, nn.Conv2d):
            channels = layer.out_channels
        elif isinstance(layer, nn.MaxPool2d | nn.AvgPool2d):
            height, width = height // 2, width // 2
        elements = channels * height * width
        total += elements
        largest = max(largest, elements)
    return total, largest


def estimate_run_bytes(
    backbone: VGGFeatures,
    shapes: list[tuple[int, int]],
    optimizer_vectors: int,
    activation_bytes: int,
    optimizer_on_pictures: bool = False,
    active_jobs: list[int] | None = None,
    window: int | None = None,
) -> int:
    """Peak bytes of one step of jobs of (h, w) `shapes`: weights, every job's activations (their graphs
    live until backward), the backward pass's transients, the target canvas with its gradient, and the
    optimizer's per-pixel vectors: over the whole canvas, or with `optimizer_on_pictures` (JobwiseLBFGS)
    over each job's own pixels. With `active_jobs`, only those jobs pass through the network (a DDP rank's).
    With `window`, the network sees one block of at most window x window pixels at a time (lit_nst.objective.tiling),
    and each job keeps its picture, the gradient the blocks add up and the clamped copy the loss reads."""
    weights = sum(buffer.numel() * buffer.element_size() for buffer in backbone.buffers())
    active = shapes if active_jobs is None else [shapes[job] for job in active_jobs]
    held = 0
    if window is None:
        per_job = [activation_elements(backbone, height, width) for height, width in active] or [(0, 0)]
    else:  # one block's graph at a time, the largest any job has
        per_job = [
            max((activation_elements(backbone, min(h, window), min(w, window)) for h, w in active), default=(0, 0))
        ]
        held = sum(3 * h * w * 4 for h, w in active) * 3
    # one canvas holds every job, at the largest height and width (see lit_nst.objective.canvas)
    canvas = len(shapes) * 3 * max(h for h, _ in shapes) * max(w for _, w in shapes) * 4
    pictures = sum(3 * h * w * 4 for h, w in shapes)
    # ReLU and conv outputs both stay alive; the backward holds about three activations of the largest layer.
    activations = sum(kept for kept, _ in per_job) * activation_bytes + 3 * max(largest for _, largest in per_job) * 4
    if activation_bytes < 4:
        # the losses' float32 copies of the layers they read, and the half-precision copy of the weights
        # kept for the run (lit_nst.objective.backbone)
        tapped = [tapped_elements(backbone, min(h, window or h), min(w, window or w)) for h, w in active]
        activations += (sum(tapped) if window is None else max(tapped, default=0)) * 4  # tiled: one block at a time
        weights += weights * activation_bytes // 4
    optimizer_state = optimizer_vectors * (pictures if optimizer_on_pictures else canvas)
    return weights + held + activations + 2 * canvas + optimizer_state


def runtime_overhead_bytes(device: torch.device) -> int:
    """What a run's process grows by beyond its tensors: on the CPU, modules imported during fit and the
    thread pools' and oneDNN's buffers, measured at 40-60 MiB from 32 to 256 px (benchmarks/bench.py).
    On CUDA the context exists before the free memory is read, and the allocator counts tensors only."""
    return 48 * 2**20 if device.type == "cpu" else 0


def tapped_elements(backbone: VGGFeatures, height: int, width: int) -> int:
    """Elements of the layers the losses read, for one image."""
    total, channels = 0, 3
    for index, layer in enumerate(backbone.features):
        if isinstance(layer, nn.Conv2d):
            channels = layer.out_channels
        elif isinstance(layer, nn.MaxPool2d | nn.AvgPool2d):
            height, width = height // 2, width // 2
        if index in backbone.taps:
            total += channels * height * width
    return total


def free_bytes(device: torch.device) -> int:
    """What the device can still give: CUDA's free memory, or the host's MemAvailable."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 1 << 62  # unknown: do not refuse


def estimate_fit_bytes(
    backbone: VGGFeatures,
    shapes: list[tuple[int, int]],
    rank_jobs: list[int],
    optimizer: torch.optim.Optimizer,
    max_steps: int,
    precision: str,
    device: torch.device,
    content_layers: list[str],
    window: int | None = None,
    history: int | None = None,
) -> int:
    """Peak bytes of one process of a run: the activations of its own jobs (`rank_jobs`), the whole canvas and
    the optimizer's state over every job (each rank holds the target and updates all of it), the content
    targets; with `window`, blocks of at most that side; with `history`, that many L-BFGS pairs."""
    if isinstance(optimizer, torch.optim.LBFGS | JobwiseLBFGS):
        # two vectors per curvature pair (one pair per step, up to history_size), plus direction,
        # previous gradient and flat gradient
        history = history or optimizer.defaults["history_size"]
        vectors = 2 * min(history, max_steps if max_steps > 0 else history) + 3
    else:
        vectors = 2  # Adam's moments; an overestimate for SGD
    activation_bytes = 2 if precision in ("bf16-mixed", "16-mixed", "bf16-true", "16-true") else 4
    jobwise = isinstance(optimizer, JobwiseLBFGS)
    tensors = estimate_run_bytes(backbone, shapes, vectors, activation_bytes, jobwise, rank_jobs, window)
    targets = sum(
        backbone.channels[name] * (h // backbone.strides[name]) * (w // backbone.strides[name]) * 4
        for h, w in shapes
        for name in content_layers
    )
    return tensors + targets + runtime_overhead_bytes(device)


def fit_refusal(estimate: int, processes: int, free: int, largest: int, remedies: list[str]) -> str | None:
    """Why a run of `processes` processes needing `estimate` bytes each cannot fit in `free`: the `largest` size
    that would, or the other `remedies`; None when it fits."""
    needed = estimate * processes
    if needed <= free:
        return None
    each = f" ({processes} processes of {estimate / GIB:.1f} GiB)" if processes > 1 else ""
    return (
        f"this run needs about {needed / GIB:.1f} GiB{each} but the device has {free / GIB:.1f} GiB free: "
        f"use --data.size {largest} or less, {', '.join(remedies)}"
    )
