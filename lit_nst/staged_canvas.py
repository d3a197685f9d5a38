"""The canvas through the stages: the jobs it paints at the current stage, their photos on the device, where it
starts, how it moves on to the next stage, and the pictures it makes. The target itself stays the module's only
parameter; this holds what is built around it."""

import torch
from torch import Tensor, nn

from lit_nst.jobs import StyleJob
from lit_nst.objective.canvas import crops, pad_stack, resized
from lit_nst.objective.clamping import clamp_for_loss
from lit_nst.objective.color import Color, content_as_seen, style_as_seen, with_chroma
from lit_nst.objective.initial import Init, initial_image, job_seed
from lit_nst.objective.objective import StyleRegion
from lit_nst.video.temporal import TemporalTerm


class StagedCanvas(nn.Module):
    """What is built around the canvas, the module's target: one canvas for all jobs, whatever their shapes
    (lit_nst.objective.canvas), at the stage `stage` of the data's schedule. Its photos are buffers that are not
    saved: a resume rebuilds them from the images."""

    def __init__(self, color: Color, init: Init) -> None:
        super().__init__()
        self.color = color
        self.init = init
        self.stage = 0  # where in the schedule (lit_nst.schedule) the target is
        self.data = None  # the data module (lit_nst.data.StyleImages), once the run is set up
        # The originals, for metrics and luminance mode; with a content mask, the mask and the working photos kept.
        for name in ("original_contents", "content_masks", "kept_contents"):
            self.register_buffer(name, None, persistent=False)

    @property
    def jobs(self) -> list[StyleJob]:
        return self.data.jobs_at_stage(self.stage)

    @property
    def shapes(self) -> list[tuple[int, int]]:
        """Each job's (h, w) corner of the canvas at the current stage."""
        return [job.shape for job in self.jobs]

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of the canvas: the largest height and width of the jobs at the output size."""
        shapes = [job.shape for job in self.data.jobs]
        return max(h for h, _ in shapes), max(w for _, w in shapes)

    def initial(self) -> Tensor:
        """Where the jobs start: the photo as the loss sees it, noise drawn per job, or white."""
        jobs = self.jobs
        seeds = [job_seed(torch.initial_seed(), job.identity()) if self.init == "noise" else 0 for job in jobs]
        seen = [content_as_seen(job.content, self.color) for job in jobs]
        return pad_stack(
            [initial_image(self.init, content, seed) for content, seed in zip(seen, seeds, strict=True)], self.shape
        )

    def prepare(self, device: torch.device) -> tuple[list[Tensor], list[list[StyleRegion]]]:
        """Hold the stage's photos; returns each job's working content and its style regions, as the loss sees them."""
        jobs, canvas = self.jobs, self.shape
        working = [content_as_seen(job.content, self.color).to(device) for job in jobs]
        self.original_contents = pad_stack([job.content for job in jobs], canvas).to(device)
        masked = jobs[0].content_mask is not None
        self.content_masks = pad_stack([job.content_mask for job in jobs], canvas).to(device) if masked else None
        self.kept_contents = pad_stack(working, canvas) if masked else None
        regions = []
        for job in jobs:
            content = job.content.to(device)
            regions.append(job.regions([style_as_seen(style.to(device), content, self.color) for style in job.styles]))
        return working, regions

    @torch.no_grad()
    def move_to(self, stage: int, target: Tensor, temporal: TemporalTerm) -> None:
        """`target`, in place, moved on to `stage`: coarse to fine, the result so far upsampled; a clip's next frames,
        the results warped along the optical flow (lit_nst.video.temporal). In place, as the canvas keeps its size
        and storage: DDP's hooks and the optimiser hold it."""
        old_shapes = self.shapes
        self.stage = stage
        # The target as the loss sees it (clamped), moved on; clamped again, as bicubic overshoots at edges.
        seen = target.clamp(0.0, 1.0)
        if self.data.schedule.moves_frames(stage):
            moved = temporal.next_frames(seen, self.picture(target), old_shapes, self.data.flows_into(stage))
        else:
            moved = resized(seen, old_shapes, self.shapes)
        target.copy_(moved.clamp(0.0, 1.0))

    def photos(self) -> list[Tensor]:
        """Each job's content photo at this stage: (3, h, w)."""
        return crops(self.original_contents, self.shapes)

    def picture(self, target: Tensor) -> Tensor:
        """The canvas the network sees: the target as written, in [0, 1], the photo kept where a mask is black."""
        target = clamp_for_loss(target)
        if self.content_masks is None:
            return target
        return self.kept_contents + self.content_masks * (target - self.kept_contents)

    def result(self, target: Tensor) -> list[Tensor]:
        """Each job's image as it is written: (3, h, w) in [0, 1]."""
        image = self.picture(target).detach()
        if self.color == "luminance":
            image = with_chroma(image, self.original_contents)
        return crops(image.clamp(0.0, 1.0), self.shapes)
