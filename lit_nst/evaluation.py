"""How this process evaluates the objective: the whole picture or block by block, over its own jobs or over its
share of every job's blocks; and so what its terms, metrics and gradients hold under DDP."""

import lightning as L
import torch
from torch import Tensor

from lit_nst.metrics import metrics_table, quality_metrics, table_rows
from lit_nst.objective.blocks import Share
from lit_nst.objective.objective import LossTerms, StyleObjective
from lit_nst.objective.tiling import BlockWalk
from lit_nst.planning import plan_run
from lit_nst.video.temporal import TemporalTerm


class Evaluation:
    """The objective as this process evaluates it, planned once the Trainer knows its devices (`plan`)."""

    def __init__(self, objective: StyleObjective) -> None:
        self.objective = objective
        self.block_walk: BlockWalk | None = None  # set by `plan` when the run is tiled
        self.world_size = 1

    def plan(self, trainer: L.Trainer, optimizer: torch.optim.Optimizer, tile_size: int | str) -> int:
        """Whole pictures or blocks, as memory and `tile_size` allow; returns the peak bytes planned for a process."""
        plan = plan_run(trainer, self.objective, optimizer, tile_size)
        self.world_size = trainer.world_size
        share = Share(trainer.global_rank, trainer.world_size)
        self.block_walk = BlockWalk(self.objective, plan.tile_size, share) if plan.tile_size else None
        return plan.estimate

    def __call__(self, images: Tensor | list[Tensor], job_ids: Tensor | None = None) -> LossTerms:
        return (self.objective if self.block_walk is None else self.block_walk)(images, job_ids)

    def set_targets(self, contents: list[Tensor], styles: list) -> None:
        (self.objective if self.block_walk is None else self.block_walk).set_targets(contents, styles)

    @property
    def shares_jobs(self) -> bool:
        """Every process evaluates every job (its share of the blocks): terms and metrics are whole on each."""
        return self.block_walk is not None and self.block_walk.shares_jobs

    @property
    def splits_jobs(self) -> bool:
        """The jobs are split over processes: a sum over processes makes a whole figure."""
        return self.world_size > 1 and not self.shares_jobs

    @property
    def gradient_scale(self) -> int:
        # DDP averages gradients over processes; a job lives on one, so this undoes the division by their count
        # (shared blocks leave the whole gradient on every process already).
        return self.world_size if self.splits_jobs else 1

    def step_losses(
        self, picture: Tensor, job_ids: Tensor, temporal: tuple[TemporalTerm, float] | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The weighted total of this process's terms, and each term summed over its jobs, as logged. `temporal`, a
        clip's temporal term and its weight, from a clip's second frame on."""
        terms = self(picture, job_ids)
        total = terms.total.sum()
        losses = {f"loss/{term}": getattr(terms, term).sum() for term in ("content", "style", "tv")}
        if temporal is not None:
            term, weight = temporal
            losses["loss/temporal"] = term(picture, self.own_jobs(job_ids, len(picture))).sum()
            total = total + weight * losses["loss/temporal"]
        return total, {**losses, "loss/total": total}

    def own_jobs(self, job_ids: Tensor, jobs: int) -> Tensor:
        """The jobs whose terms this process holds: its batch's, or every job where the blocks are shared."""
        return torch.arange(jobs) if self.shares_jobs else job_ids

    def quality(
        self, trainer: L.Trainer, results: list[Tensor], photos: list[Tensor], job_ids: Tensor
    ) -> tuple[list[dict], Tensor]:
        """Every job's quality row (lit_nst.metrics) on every process, and the table they came from."""
        rows = quality_metrics(self, results, photos, self.own_jobs(job_ids, len(photos)))
        table = metrics_table(rows, len(photos), results[0].device)
        if self.splits_jobs:  # each process measured its own jobs: the sum holds every row
            table = trainer.strategy.reduce(table, reduce_op="sum")
        return table_rows(table), table
