"""Temporal consistency of a clip (Ruder et al. 2016): each frame starts from the previous frame's result warped
along the optical flow, and a temporal term keeps it close to that warp wherever the flow is reliable.

Without it each frame's optimisation lands in another local minimum: strokes crawl and colours pulse.
"""

import torch
from torch import Tensor, nn

from lit_nst.objective.canvas import crop
from lit_nst.video.flow import warp


class TemporalTerm(nn.Module):
    """mean(c · (x − ω)²) per job: ω the previous result warped into this frame, c where the flow is reliable."""

    def __init__(self) -> None:
        super().__init__()
        # Canvas-shaped (lit_nst.objective.canvas) once a clip's second frame starts; saved in the checkpoint by hand,
        # not in the state dict, so checkpoints of stills keep their keys.
        self.register_buffer("warped", None, persistent=False)  # (jobs, 3, H, W)
        self.register_buffer("reliable", None, persistent=False)  # (jobs, 1, H, W), 0 outside the pictures
        self.register_buffer("pixels", None, persistent=False)  # (jobs,) each picture's h·w

    @property
    def active(self) -> bool:
        return self.warped is not None

    def forward(self, picture: Tensor, job_ids: Tensor) -> Tensor:
        """(jobs, 3, H, W) canvas -> the term of each job of `job_ids`, shape (B,)."""
        rows = job_ids.tolist()
        if not rows:
            return picture.new_zeros(0)
        difference = (picture[rows].float() - self.warped[rows]).square() * self.reliable[rows]
        # Over each picture's pixels (the canvas's padding has c = 0), as the content term is a mean.
        return difference.flatten(1).sum(1) / (3 * self.pixels[rows])

    @torch.no_grad()
    def next_frames(
        self, canvas: Tensor, picture: Tensor, shapes: list[tuple[int, int]], flows: list[tuple[Tensor, Tensor] | None]
    ) -> Tensor:
        """The target `canvas` with each job's picture warped along its flow into its next frame, to start from;
        the warped `picture` (the canvas as the network sees it, a content mask's photo in place) becomes the
        term's target. A job whose flow is None stays where it is (a chunk that has painted its last frame)."""
        moved = canvas.detach().clone()
        self.warped = picture.detach().float().clone()
        self.reliable = canvas.new_zeros(canvas.shape[0], 1, *canvas.shape[-2:], dtype=torch.float32)
        self.pixels = torch.tensor([h * w for h, w in shapes], device=canvas.device, dtype=torch.float32)
        for row, (shape, pair) in enumerate(zip(shapes, flows, strict=True)):
            if pair is None:
                continue
            flow, reliable = (tensor.to(canvas.device) for tensor in pair)
            # Bicubic: a bilinear warp blurs a little, and each frame warps the last, so over 36 frames of a
            # 128-px pan the strokes' sharpness (mean neighbour difference) fell by a third; bicubic kept it.
            crop(moved[row], shape).copy_(warp(crop(canvas[row], shape), flow, "bicubic"))
            warped = warp(crop(self.warped[row], shape), flow, "bicubic")
            crop(self.warped[row], shape).copy_(warped.clamp(0.0, 1.0))
            crop(self.reliable[row], shape).copy_(reliable)
        return moved

    def state(self) -> dict[str, Tensor] | None:
        return (
            None if self.warped is None else {"warped": self.warped, "reliable": self.reliable, "pixels": self.pixels}
        )

    def load_state(self, state: dict[str, Tensor] | None) -> None:
        """From a checkpoint, before the module moves to its device (the buffers move with it)."""
        if state is not None:
            self.warped, self.reliable, self.pixels = (state[key] for key in ("warped", "reliable", "pixels"))
