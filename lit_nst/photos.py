"""The current stage's photos on the device, and the pictures they make of the target."""

import torch
from torch import Tensor, nn

from lit_nst.jobs import StyleJob
from lit_nst.objective.canvas import crops, pad_stack
from lit_nst.objective.clamping import clamp_for_loss
from lit_nst.objective.color import Color, content_as_seen, style_as_seen, with_chroma
from lit_nst.objective.objective import StyleRegion


class StagePhotos(nn.Module):
    """The photos of a stage, canvas-shaped (lit_nst.objective.canvas): the originals, for metrics and luminance
    mode, and with a content mask, the mask and the working photos that its black part keeps. Buffers that are not
    saved: a resume rebuilds them from the images."""

    def __init__(self, color: Color) -> None:
        super().__init__()
        self.color = color
        for name in ("originals", "content_masks", "kept"):
            self.register_buffer(name, None, persistent=False)

    def prepare(
        self, jobs: list[StyleJob], canvas: tuple[int, int], device: torch.device
    ) -> tuple[list[Tensor], list[list[StyleRegion]]]:
        """Hold the stage's photos; returns each job's working content and its style regions, as the loss sees them."""
        working = [content_as_seen(job.content, self.color).to(device) for job in jobs]
        self.originals = pad_stack([job.content for job in jobs], canvas).to(device)
        masked = jobs[0].content_mask is not None
        self.content_masks = pad_stack([job.content_mask for job in jobs], canvas).to(device) if masked else None
        self.kept = pad_stack(working, canvas) if masked else None
        regions = []
        for job in jobs:
            content = job.content.to(device)
            regions.append(job.regions([style_as_seen(style.to(device), content, self.color) for style in job.styles]))
        return working, regions

    def picture(self, target: Tensor) -> Tensor:
        """The canvas the network sees: the target as written, in [0, 1], the photo kept where a mask is black."""
        target = clamp_for_loss(target)
        if self.content_masks is None:
            return target
        return self.kept + self.content_masks * (target - self.kept)

    def result(self, target: Tensor, shapes: list[tuple[int, int]]) -> list[Tensor]:
        """Each job's image as it is written: (3, h, w) in [0, 1]."""
        image = self.picture(target).detach()
        if self.color == "luminance":
            image = with_chroma(image, self.originals)
        return crops(image.clamp(0.0, 1.0), shapes)
