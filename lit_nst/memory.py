"""How much memory a run will need, estimated before the first step from the shapes alone."""

from pathlib import Path

import torch
from torch import nn

from lit_nst.backbone import VGGFeatures
from lit_nst.errors import UsageError

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
) -> int:
    """Peak bytes of one step of jobs of (h, w) `shapes`: weights, every job's activations (their graphs
    live until backward), the backward pass's transients, the target canvas with its gradient, and the
    optimizer's per-pixel vectors: over the whole canvas, or with `optimizer_on_pictures` (JobwiseLBFGS)
    over each job's own pixels."""
    weights = sum(buffer.numel() * buffer.element_size() for buffer in backbone.buffers())
    per_job = [activation_elements(backbone, height, width) for height, width in shapes]
    # one canvas holds every job, at the largest height and width (see lit_nst.canvas)
    canvas = len(shapes) * 3 * max(h for h, _ in shapes) * max(w for _, w in shapes) * 4
    pictures = sum(3 * h * w * 4 for h, w in shapes)
    # ReLU and conv outputs both stay alive; the backward holds about three activations of the largest layer.
    activations = sum(kept for kept, _ in per_job) * activation_bytes + 3 * max(largest for _, largest in per_job) * 4
    if activation_bytes < 4:
        # the losses' float32 copies of the layers they read (autocast's half weight copies were not
        # measurable at the peak, which is in the backward pass)
        activations += sum(tapped_elements(backbone, height, width) for height, width in shapes) * 4
    return weights + activations + 2 * canvas + optimizer_vectors * (pictures if optimizer_on_pictures else canvas)


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


def check_fits(estimate: int, free: int, size: int) -> None:
    """Refuse a run that cannot fit, naming the estimate and the largest size that would."""
    if estimate <= free:
        return
    # Everything but the weights grows with the pixel count, i.e. with size².
    largest = int(size * (free / estimate) ** 0.5) // 16 * 16
    raise UsageError(
        f"this run needs about {estimate / GIB:.1f} GiB but the device has {free / GIB:.1f} GiB free: "
        f"use --data.size {largest} or less, fewer jobs per device, or --trainer.precision bf16-mixed"
    )
