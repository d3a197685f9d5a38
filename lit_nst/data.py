"""What goes in: the content and style images of each job, and the per-step batches of job indices."""

import dataclasses
import itertools
from pathlib import Path
from typing import Literal

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from lit_nst.errors import UsageError
from lit_nst.images import image_to_tensor, load_image, load_mask, resize_longer_side
from lit_nst.jobs import StyleJob, check_names_unique, normalised_blend
from lit_nst.objective.canvas import image_shape
from lit_nst.runs import folder_of
from lit_nst.schedule import Schedule
from lit_nst.video.clips import Clip, clip_folder
from lit_nst.video.files import is_clip


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
    """Loads the content and style images, pairs them into jobs, and holds the coarse-to-fine schedule."""

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
        if not contents or not styles:
            raise UsageError("give at least one --data.content and one --data.style image")
        if style_masks is not None and len(style_masks) != len(styles):
            raise UsageError(
                f"--data.style_masks has {len(style_masks)} masks for {len(styles)} styles: give one per style "
                "(null for a style that paints everywhere)"
            )
        one_job_per_content = style_blend is not None or style_masks is not None
        if pairs == "zip" and one_job_per_content:
            raise UsageError(
                "--data.pairs zip does not apply with --data.style_blend or --data.style_masks: each content then "
                "makes one job painted in all the styles; drop --data.pairs, or the blend for one job per pair"
            )
        if pairs == "zip" and len(contents) != len(styles):
            raise UsageError(
                f"--data.pairs zip needs as many contents as styles, got {len(contents)} and {len(styles)}"
            )
        self.size = self.schedule.scales[-1]
        self.style_scale = style_scale
        self._styles: dict[int, list[Tensor]] = {}  # a clip's style images by size
        self._stage_jobs: tuple[int, list[StyleJob]] = (-1, [])  # a clip's jobs at the stage last asked for
        self.run_folder: Path | None = None  # where the run keeps its checkpoints and a clip's work (lit_nst.runs)
        self.clip = self._clip(contents, styles, one_job_per_content, frame_steps, chunks, overlap)
        self.frame_steps = 20 if frame_steps is None else frame_steps
        self.style_masks = [None if mask in (None, "") else Path(mask) for mask in style_masks or []]
        self.content_mask = None if content_mask in (None, "") else Path(content_mask)
        if one_job_per_content:
            self.blend = normalised_blend(style_blend or [1.0] * len(styles), len(styles))
            self.groups = [(c, styles) for c in contents]
        else:
            self.blend = [1.0]
            pairing = itertools.product(contents, styles) if pairs == "product" else zip(contents, styles, strict=True)
            self.groups = [(c, [s]) for c, s in pairing]
        if self.clip is None:
            self._jobs_by_stage = [self._jobs_at(size) for size in self.schedule.scales]
        else:
            self.schedule = self.schedule.with_frames(self.clip.plan.stages, self.frame_steps)
        self.jobs = self.jobs_at_stage(self.schedule.stages - 1)
        check_names_unique(self.jobs)
        if self.clip is not None:
            # The first frame's coarsest scale: a picture too small is refused before any work, and the stage the
            # first step asks for is ready (a clip keeps one stage's jobs).
            self._clip_jobs(0)

    def _clip(
        self,
        contents: list[str],
        styles: list[str],
        one_job_per_content: bool,
        frame_steps: int,
        chunks: int,
        overlap: int,
    ) -> Clip | None:
        """The clip to paint, when the content is one (a video file or a folder of frames)."""
        if not any(is_clip(content) for content in contents):
            given = [
                f"--data.{name}"
                for name, value in (("frame_steps", frame_steps), ("chunks", chunks), ("overlap", overlap))
                if value is not None
            ]
            if given:
                raise UsageError(
                    f"{' and '.join(given)} apply to a clip (a video file or a folder of frames), and "
                    "--data.content is a picture: drop them"
                )
            return None
        if len(contents) > 1:
            raise UsageError("a clip is painted on its own: give it as the only --data.content")
        if len(styles) > 1 and not one_job_per_content:
            raise UsageError(
                "a clip is painted in one style: give one --data.style, or blend several with --data.style_blend"
            )
        if frame_steps is not None and frame_steps <= 0:
            raise UsageError(f"--data.frame_steps must be positive, got {frame_steps}")
        return Clip(
            Path(contents[0]),
            self.size,
            1 if chunks is None else chunks,
            4 if overlap is None else overlap,
            self._too_small("content"),
        )

    def _clip_jobs(self, stage: int) -> list[StyleJob]:
        """Each chunk's job at a stage: the first frame coarse to fine over `scales`, then a frame per stage."""
        if self._stage_jobs[0] != stage:  # asked for at every step: built once a stage
            self._stage_jobs = (stage, self._new_clip_jobs(stage))
        return self._stage_jobs[1]

    def _new_clip_jobs(self, stage: int) -> list[StyleJob]:
        clip, size = self.clip, self.schedule.size_at(stage)
        styles = self._styles_at(size)
        contents = [clip.frame(frame, size) for frame in self.frames_at(stage)]
        chunked = clip.plan.chunks > 1
        return [
            dataclasses.replace(
                self._job(clip.path, [Path(s) for s in self.groups[0][1]], content, styles),
                chunk=chunk if chunked else None,
            )
            for chunk, content in enumerate(contents)
        ]

    def _styles_at(self, size: int) -> list[Tensor]:
        if size not in self._styles:
            self._styles[size] = [self._load(s, "style", round(size * self.style_scale)) for s in self.groups[0][1]]
        return self._styles[size]

    def _jobs_at(self, size: int) -> list[StyleJob]:
        contents = {c: self._load(c, "content", size) for c, _ in self.groups}
        styles = {s: self._load(s, "style", round(size * self.style_scale)) for _, group in self.groups for s in group}
        return [
            self._job(Path(c), [Path(s) for s in group], contents[c], [styles[s] for s in group])
            for c, group in self.groups
        ]

    def _job(self, content_path: Path, style_paths: list[Path], content: Tensor, styles: list[Tensor]) -> StyleJob:
        shape = image_shape(content)
        masks = [None if path is None else load_mask(path, "style mask", shape) for path in self.style_masks]
        content_mask = None if self.content_mask is None else load_mask(self.content_mask, "content mask", shape)
        return StyleJob(
            content_path,
            style_paths,
            content,
            styles,
            self.blend,
            list(self.style_masks),
            masks,
            self.content_mask,
            content_mask,
        )

    def jobs_at_stage(self, stage: int) -> list[StyleJob]:
        """The jobs at a stage: a scale of the schedule, or for a clip, its first frame's scales then its frames."""
        return self._jobs_by_stage[stage] if self.clip is None else self._clip_jobs(stage)

    def frames_at(self, stage: int) -> list[int]:
        """The frame each chunk of the clip paints at a stage."""
        frame_stage = max(0, self.schedule.frame_stage(stage))
        return [self.clip.plan.frame(chunk, frame_stage) for chunk in range(self.clip.plan.chunks)]

    def flows_into(self, stage: int) -> list[tuple[Tensor, Tensor] | None]:
        """Each chunk's (flow from its frame at `stage` to its frame before, reliability); None where it stays."""
        before, now = self.frames_at(stage - 1), self.frames_at(stage)
        if not self.clip.flows:
            self._load_flows()
        return [None if old == new else self.clip.flow_into(new) for old, new in zip(before, now, strict=True)]

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

    def _load(self, path: str, role: str, size: int) -> Tensor:
        return image_to_tensor(
            resize_longer_side(load_image(path, role), size, f"{role} image {path}", self._too_small(role))
        )

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
        if self.clip is not None:  # only then: checkpoints of stills written before clips existed still resume
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
