"""The block size a run's memory allows: whole pictures where they fit, else the largest blocks that do, else a
refusal naming what would fit (lit_nst.memory estimates the bytes)."""

from collections.abc import Callable
from typing import NamedTuple

import lightning as L
import torch

from lit_nst.errors import UsageError
from lit_nst.memory import estimate_fit_bytes, fit_refusal, free_bytes
from lit_nst.objective.blocks import block_geometry, block_windows, round_up
from lit_nst.objective.objective import StyleObjective
from lit_nst.ranks import any_rank

AUTO_TILE_SIZES = (2048, 1536, 1024, 768, 512, 384, 256)  # what `auto` tries, largest (least halo) first


def fit_estimate(
    objective: StyleObjective,
    shapes: list[tuple[int, int]],
    rank_jobs: list[int],
    world: int,
    optimizer: torch.optim.Optimizer,
    max_steps: int,
    precision: str,
    device: torch.device,
) -> Callable[..., int]:
    """estimate(tile_size, history_size, scale): one process's peak bytes (lit_nst.memory) in blocks of that size
    (0: none), with that many L-BFGS pairs (None: the optimiser's), the pictures scaled by `scale`. Tiled under
    DDP, each process has every job."""
    halo = block_geometry(objective)[1]

    def estimate(tile_size: int, history: int | None, scale: float = 1.0) -> int:
        jobs = list(range(len(shapes))) if tile_size and world > 1 else rank_jobs
        scaled = [(max(1, round(h * scale)), max(1, round(w * scale))) for h, w in shapes]
        return estimate_fit_bytes(
            objective.backbone,
            scaled,
            jobs,
            optimizer,
            max_steps,
            precision,
            device,
            list(objective.content_layers),
            tile_size + 2 * halo if tile_size else None,
            history,
        )

    return estimate


class MemoryPlan(NamedTuple):
    tile_size: int  # the blocks' inner size; 0: the whole picture at once
    estimate: int  # peak bytes of one process
    refusal: str | None  # why it cannot fit, and what would make it, or None


def plan_memory(
    requested: int | str,
    objective: StyleObjective,
    shapes: list[tuple[int, int]],
    world: int,
    estimate: Callable[[int, int | None], int],
    processes: int,
    free: int,
    size: int,
    history: int | None,
) -> MemoryPlan:
    """The block size (`requested`, or for `auto` the largest that fits), its memory, and a refusal if it cannot fit.

    `estimate(tile_size, history_size)` is one process's peak bytes; `history` the L-BFGS history, None for another
    optimiser. Under DDP with fewer jobs than processes, `auto` tiles so that every process has blocks to share.
    """
    stride, _ = block_geometry(objective)
    longest = max(max(shape) for shape in shapes)

    def fits(tile: int, pairs: int | None = None) -> bool:
        return estimate(tile, pairs) * processes <= free

    # A statistic that is not a sum over positions (`sliced`) is never tiled (check_tile_size refuses a block size).
    tiled = objective.statistic.additive
    tiles = [tile for tile in AUTO_TILE_SIZES if tile % stride == 0 and tile < longest and tiled]
    if requested != "auto":
        tile = int(requested)
    elif (
        world > 1
        and len(shapes) < world
        and tiled
        and _sharing_pays(shapes, world, stride, block_geometry(objective)[1])
    ):
        share = round_up(round_up(longest, world) // world, stride)  # the long side in `world` pieces
        options = [share, *(t for t in tiles if t < share)]
        tile = next((t for t in options if fits(t)), options[-1])
    elif fits(0):
        tile = 0
    else:
        tile = next((t for t in tiles if fits(t)), tiles[-1] if tiles else 0)
    needed = estimate(tile, None)
    if needed * processes <= free:
        return MemoryPlan(tile, needed, None)
    remedies = []
    fitting = next((t for t in tiles if fits(t)), None)
    if fitting is not None and fitting != tile:
        remedies.append(f"--model.tile_size {fitting}")
    smallest = tiles[-1] if tiles else tile
    pairs = next((pairs for pairs in range(history or 0, 0, -1) if fits(smallest, pairs)), None)
    if pairs is not None and fitting is None:
        remedies.append(f"--model.tile_size {smallest} with --optimizer.history_size {pairs}")
    remedies += ["fewer jobs per device", "or --trainer.precision bf16-mixed"]
    # The largest --data.size that fits as planned: with blocks, their activations do not grow with the picture.
    sizes = range(size // 16, 0, -1)
    largest = next((n * 16 for n in sizes if estimate(tile, None, n * 16 / size) * processes <= free), 16)
    return MemoryPlan(tile, needed, fit_refusal(needed, processes, free, largest, remedies))


def _sharing_pays(shapes: list[tuple[int, int]], world: int, stride: int, halo: int) -> bool:
    """Whether `world` processes sharing the pictures' blocks beat one process per job, by pixels through the
    network: a shared block costs two forwards and a backward over its window (about 4 forwards), a whole
    picture a forward and a backward (about 3). Halos make sharing a small picture slower than idling."""
    shared = untiled = 0
    for height, width in shapes:
        tile = round_up(round_up(max(height, width), world) // world, stride)
        windows = block_windows((height, width), tile, stride, halo)
        shared += sum((bottom - top) * (right - left) for _, (top, bottom, left, right) in windows)
        untiled = max(untiled, height * width)
    return 4 * shared / world < 3 * untiled


def plan_run(
    trainer: L.Trainer, objective: StyleObjective, optimizer: torch.optim.Optimizer, requested: int | str
) -> MemoryPlan:
    """This rank's block size (0: whole pictures) and peak bytes at the output size, the same block size on every
    rank; a UsageError on every rank where any cannot fit, before any work on the device, so that a run is refused
    rather than killed halfway."""
    data, device = trainer.datamodule, trainer.lightning_module.device
    shapes = [job.shape for job in data.jobs]
    precision = str(trainer.precision)
    rank_jobs = data.rank_job_ids().tolist()
    estimate = fit_estimate(
        objective, shapes, rank_jobs, trainer.world_size, optimizer, trainer.max_steps, precision, device
    )
    # DDP processes on a CPU share the machine's memory; on GPUs each has its own device.
    processes, free = (trainer.num_devices if device.type == "cpu" else 1), free_bytes(device)

    def plan(tile_size: int | str) -> MemoryPlan:
        return plan_memory(
            tile_size,
            objective=objective,
            shapes=shapes,
            world=trainer.world_size,
            estimate=estimate,
            processes=processes,
            free=free,
            size=data.size,
            history=optimizer.defaults.get("history_size"),
        )

    chosen = plan(requested)
    if trainer.world_size > 1:  # each rank read its own free memory: all walk rank 0's blocks, each checks them
        chosen = plan(trainer.strategy.broadcast(chosen.tile_size))
    if chosen.tile_size and precision == "16-mixed":
        raise UsageError("16-mixed's gradient scaler cannot reach inside the blocks: use bf16-mixed or 32-true")
    (refused,) = any_rank(trainer, chosen.refusal is not None)  # a rank left alone would wait forever
    if refused:
        other = "another process's device cannot hold its share of this run: use fewer jobs per device"
        raise UsageError(chosen.refusal or other)
    return chosen
