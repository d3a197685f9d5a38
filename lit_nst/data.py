"""What goes in: the content and style images of each job, the stages they go through, and the per-step batches of
job indices."""

from pathlib import Path
from typing import Literal

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from lit_nst.clip_stages import ClipStages, clip_of
from lit_nst.errors import UsageError
from lit_nst.jobs import JobMaker, StyleJob, check_names_unique, normalised_blend, paired
from lit_nst.runs import folder_of
from lit_nst.schedule import Schedule
from lit_nst.video.clips import clip_folder


class RepeatedJobs(Dataset):
    """Every item is the same batch of job indices: one item is one optimisation step over those jobs."""

    def __init__(self, job_ids: Tensor, steps: int) -> None:
        self.job_ids = job_ids
        self.steps = steps

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, index: int) -> Tensor:
        return self.job_ids


class StyleImages(L.LightningDataModule):
    """Loads the content and style images, pairs them into jobs, and holds the stages they go through.

    The jobs at each stage of the schedule (lit_nst.schedule), and each rank's share of them.
    """

    def __init__(
        self,
        content: str | list[str],
        style: str | list[str],
        size: int | None = None,
        style_scale: float = 1.0,
        pairs: Literal["product", "zip"] = "product",
        style_blend: list[float] | None = None,
        scales: list[int] | None = None,
        steps: list[int] | None = None,
        style_masks: list[str | None] | None = None,
        content_mask: str | None = None,
        frame_steps: int | None = None,
        chunks: int | None = None,
        overlap: int | None = None,
    ) -> None:
        """
        Args:
            content: the photo(s) to repaint.
            style: the painting(s) whose style is transferred.
            size: longer side of the content images, in pixels (the output size); 512 by default. Given with
                `scales`, the schedule is stretched to end at `size` (print.yaml at another print size).
            style_scale: the style image's longer side is `size × style_scale`; larger gives coarser strokes.
            pairs: with several contents and styles, `product` makes every pair, `zip` pairs them in order.
            style_blend: weights of the styles when they are to be blended into one style (the weights are
                normalised); each content then makes one job painted in the blend. Unset (and no
                `style_masks`): each style is its own job (see `pairs`).
            scales: coarse to fine: increasing longer-side sizes, the last the output size; each scale starts
                from the previous result, upsampled.
            steps: optimisation steps at each of `scales`; their sum is the run's `max_steps`.
            style_masks: regions: one mask per style, in the content's frame (its proportions), white where that
                style paints; `null` for a style that paints everywhere. Each content then makes one job
                painted in all the styles (guided Grams, Gatys et al. 2017). Styles sharing a mask are
                blended by `style_blend` (equal by default).
            content_mask: white where the picture may change, black where the photo is kept as it is; grey
                blends the two. Styles without a mask paint the white part.
            frame_steps: a clip's steps for each frame after the first, which starts from the previous result
                warped along the optical flow (20 by default). The first frame takes `steps` (coarse to fine
                with `scales`), or 200 steps.
            chunks: a clip is cut into this many contiguous chunks painted side by side, one job each (spread
                over the processes under DDP: give one chunk per process); 1 (the default) paints it in one sweep.
            overlap: frames a chunk paints before its own, cross-faded with the previous chunk's (4 by default).
        """
        super().__init__()
        self.schedule = Schedule.from_flags(size, scales, steps)
        if style_scale <= 0:
            raise UsageError(f"--data.style_scale must be positive, got {style_scale}")
        contents = [content] if isinstance(content, str) else list(content)
        styles = [style] if isinstance(style, str) else list(style)
        one_job_per_content = style_blend is not None or style_masks is not None
        self.groups = paired(contents, styles, pairs, one_job_per_content, style_masks)
        self.size = self.schedule.scales[-1]
        self.style_scale = style_scale
        self.run_folder: Path | None = None  # where the run keeps its checkpoints and a clip's work (lit_nst.runs)
        clip_settings = {"frame_steps": frame_steps, "chunks": chunks, "overlap": overlap}
        self.clip = clip_of(contents, styles, one_job_per_content, self.size, clip_settings, self._too_small("content"))
        blend = normalised_blend(style_blend or [1.0] * len(styles), len(styles)) if one_job_per_content else [1.0]
        self.frame_steps = 20 if frame_steps is None else frame_steps
        masks = [None if mask in (None, "") else Path(mask) for mask in style_masks or []]
        kept = None if content_mask in (None, "") else Path(content_mask)
        maker = JobMaker(blend, masks, kept, style_scale, self._too_small)
        if self.clip is None:
            self._jobs_by_stage = [maker.jobs_at(self.groups, size) for size in self.schedule.scales]
        else:
            self.schedule = self.schedule.with_frames(self.clip.plan.stages, self.frame_steps)
            self.clip_stages = ClipStages(self.clip, self.schedule, maker, self.groups[0][1])
        self.jobs = self.jobs_at_stage(self.schedule.stages - 1)
        check_names_unique(self.jobs)
        if self.clip is not None:
            # The first frame's coarsest scale: a picture too small is refused before any work, and the stage the
            # first step asks for is ready (a clip keeps one stage's jobs).
            self.jobs_at_stage(0)

    def jobs_at_stage(self, stage: int) -> list[StyleJob]:
        """The jobs at a stage: a scale of the schedule, or for a clip, its first frame's scales then its frames."""
        return self._jobs_by_stage[stage] if self.clip is None else self.clip_stages.jobs_at(stage)

    def frames_at(self, stage: int) -> list[int]:
        """The frame each chunk of the clip paints at a stage."""
        return self.clip_stages.frames_at(stage)

    def flows_into(self, stage: int) -> list[tuple[Tensor, Tensor] | None]:
        """Each chunk's (flow from its frame at `stage` to its frame before, reliability); None where it stays."""
        return self.clip_stages.flows_into(stage, self._load_flows)

    def _load_flows(self) -> None:
        """Computed once, at the first frame after the cold start (so a refused run computes none), by rank 0 into
        the run's folder, where the other ranks read them: every rank must warp with the very same flow."""
        trainer = self.trainer
        if trainer is None:
            self.clip.load_flows(None, write=False)
            return
        folder = clip_folder(folder_of(trainer))
        if trainer.is_global_zero:
            self.clip.load_flows(folder, write=True)
        if trainer.world_size > 1:
            trainer.strategy.barrier("lit_nst.flows")
            if not trainer.is_global_zero:
                self.clip.load_flows(folder, write=False)  # computes them itself where the folder is not shared

    def _too_small(self, role: str) -> str:
        """What raises a picture that the run's sizes make too small: the flags that set them."""
        flag = "--data.scales" if self.schedule.given and self.schedule.note is None else "--data.size"
        remedy = f"raise {flag}" + (" or --data.style_scale" if role == "style" else "")
        if self.schedule.note is not None:  # the size named is a stretched scale, a fraction of --data.size
            remedy += f" (the schedule stretched to it starts at {self.schedule.scales[0]} of its {self.size} px)"
        return remedy

    def identity(self) -> dict[str, object]:
        """What a checkpoint of these jobs must match to be resumed with them."""
        identity = {
            "data.jobs": [job.identity() for job in self.jobs],
            "data.size": self.size,
            "data.style_scale": self.style_scale,
            "data.scales": self.schedule.scales,
            "data.steps": self.schedule.steps if len(self.schedule.steps) > 1 else None,
        }
        if self.clip is not None:
            # The first frame's schedule under the name the user gave it, the later frames' under theirs.
            identity["data.steps"] = self.schedule.steps[: len(self.schedule.scales)]
            identity.update({"data.frame_steps": self.frame_steps, **self.clip.identity()})
        return identity

    def train_dataloader(self) -> DataLoader:
        steps = self.trainer.max_steps if self.trainer is not None and self.trainer.max_steps > 0 else 1
        return DataLoader(RepeatedJobs(self.rank_job_ids(), steps), batch_size=None, shuffle=False)

    def val_dataloader(self) -> DataLoader:
        """One batch of this rank's jobs: validation measures the current images."""
        return DataLoader(RepeatedJobs(self.rank_job_ids(), 1), batch_size=None, shuffle=False)

    def rank_job_ids(self) -> torch.Tensor:
        """The jobs this process computes (all of them without DDP)."""
        # Each job on exactly one rank: no sampler padding duplicates a job, none is dropped.
        trainer = self.trainer
        rank, world_size = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        return torch.arange(len(self.jobs))[rank::world_size]
