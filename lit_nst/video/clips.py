"""A clip to paint: its frames at the output size, the flow between them, and how frames are split into chunks.

Frames are painted one after another, each starting from the previous result warped along the optical flow
(Ruder et al. 2016). To spread a clip over processes it is cut into contiguous chunks painted side by side, one
job each: at stage s every chunk paints its s-th frame. A chunk after the first also paints the `overlap`
frames before its own, and the result cross-fades from the earlier chunk to the later one over them, so a
chunk's cold start is hidden under the previous chunk's frames.
"""

import functools
import hashlib
import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor
from torchvision.transforms.functional import pil_to_tensor, to_pil_image

from lit_nst.errors import UsageError
from lit_nst.files import atomic_file
from lit_nst.images import image_to_tensor, load_image, resize_longer_side
from lit_nst.video.files import read_frames
from lit_nst.video.flow import frame_flows


@dataclass(frozen=True)
class ChunkPlan:
    """Which frame each chunk paints at each stage of a clip of `frames` frames."""

    frames: int
    chunks: int
    overlap: int

    def painted(self) -> list[tuple[int, int]]:
        """[first, end) frames each chunk paints: balanced, each after the first starting `overlap` frames before
        the end of the one before it."""
        total = self.frames + self.overlap * (self.chunks - 1)
        cuts = [round(index * total / self.chunks) for index in range(self.chunks + 1)]
        painted, first = [], 0
        for length in (end - start for start, end in zip(cuts, cuts[1:], strict=False)):
            painted.append((first, first + length))
            first += length - self.overlap
        return painted

    def spans(self) -> list[tuple[int, int]]:
        """[first, end) frames of each chunk's own part (the overlaps belong to the earlier chunk): the clip, cut."""
        painted = self.painted()
        return [(first if index == 0 else painted[index - 1][1], end) for index, (first, end) in enumerate(painted)]

    @property
    def stages(self) -> int:
        return max(end - first for first, end in self.painted())

    def frame(self, chunk: int, stage: int) -> int:
        """The frame chunk `chunk` paints at stage `stage`; a chunk that is done repeats its last."""
        first, end = self.painted()[chunk]
        return min(first + stage, end - 1)

    def paints(self, chunk: int, stage: int) -> bool:
        """Whether chunk `chunk` paints a frame of its own at stage `stage` (it is not done)."""
        first, end = self.painted()[chunk]
        return first + stage < end

    def sources(self, frame: int) -> list[tuple[int, float]]:
        """(chunk, weight) of each chunk's picture that makes output frame `frame`: weights sum to 1."""
        spans, painted = self.spans(), self.painted()
        chunk = next(index for index, (first, end) in enumerate(spans) if first <= frame < end)
        following = chunk + 1
        if following < self.chunks and frame >= painted[following][0]:
            # Across the overlap the later chunk's share rises from 1/(overlap+1) to overlap/(overlap+1).
            share = (frame - painted[following][0] + 1) / (self.overlap + 1)
            return [(chunk, 1 - share), (following, share)]
        return [(chunk, 1.0)]


class Clip:
    """The frames of a video file or a folder of frames, at the output size."""

    def __init__(self, path: Path, size: int, chunks: int, overlap: int, too_small: str = "raise the size") -> None:
        """`too_small`: what the error says to do when a size makes the frames too small for the network."""
        # Kept as 8 bits, resized as they are read: a few hundred frames as float32 would cost 4x the memory.
        self.path, self.too_small = path, too_small
        images, self.rate, self.has_audio = read_frames(path, functools.partial(self._sized, size=size))
        self.frames = [pil_to_tensor(image) for image in images]
        if chunks < 1:
            raise UsageError(f"--data.chunks must be positive, got {chunks}")
        if overlap < 0:
            raise UsageError(f"--data.overlap must be 0 or positive, got {overlap}")
        if chunks > len(images):
            raise UsageError(f"--data.chunks {chunks} is more than the clip's {len(images)} frames")
        self.plan = ChunkPlan(len(images), chunks, overlap)
        own = [end - first for first, end in self.plan.spans()]
        # A cross-fade must end before the next one starts: each chunk's own part (the last's: any) spans an overlap.
        if chunks > 1 and (min(own[:-1]) < max(overlap, 1) or own[-1] < 1):
            raise UsageError(
                f"--data.overlap {overlap} is longer than a chunk's own part of the clip's {len(images)} "
                f"frames ({min(own)}): lower it, or --data.chunks"
            )
        self.flows: list[tuple[Tensor, Tensor]] = []  # (flow t -> t-1, reliability) for t ≥ 1, by `load_flows`

    def frame(self, index: int, size: int | None = None) -> Tensor:
        """(3, h, w) in [0, 1], at the output size or (a chunk's cold start, coarse to fine) at `size`."""
        frame = self.frames[index]
        if size is None or size == max(frame.shape[-2:]):
            return frame.float() / 255
        return image_to_tensor(self._sized(to_pil_image(frame), size))

    def _sized(self, image: Image.Image, size: int) -> Image.Image:
        """A frame at `size` px along its longer side, or the run's one-line error naming the clip."""
        return resize_longer_side(image, size, f"the frames of {self.path}", self.too_small)

    def load_flows(self, folder: Path | None, write: bool) -> None:
        """The flows between frames: read from `folder` when computed before for these frames, else computed
        (and, where `write`, saved there, so a resume or a rerun does not compute them again)."""
        digest = hashlib.sha256()
        for frame in self.frames:
            digest.update(frame.numpy().tobytes())
        key = digest.hexdigest()[:16]
        cache = folder / f"flow-{key}.pt" if folder is not None else None
        if cache is not None and cache.is_file():
            try:
                self.flows = torch.load(cache, weights_only=True)
                return
            except (RuntimeError, OSError, EOFError, pickle.UnpicklingError):
                pass  # damaged (the disk, a copy cut short): computed again, and rewritten below
        self.flows = frame_flows([self.frame(index) for index in range(len(self.frames))])
        if write and cache is not None:
            with atomic_file(cache) as stream:
                torch.save(self.flows, stream)

    def flow_into(self, frame: int) -> tuple[Tensor, Tensor]:
        """(flow from `frame` to the frame before it, where it is reliable)."""
        return self.flows[frame - 1]

    def identity(self) -> dict[str, object]:
        """The chunks a resume must keep (the overlap only matters between chunks); the frames are the file's."""
        chunks = {"data.chunks": self.plan.chunks}
        return chunks if self.plan.chunks == 1 else {**chunks, "data.overlap": self.plan.overlap}


def clip_folder(run: Path) -> Path:
    """A run's clip work beside its checkpoints (found again by a resume): the flow cache, and `frames/`."""
    return run / "video"


def chunk_frame_file(folder: Path, chunk: int, frame: int) -> Path:
    """Where a chunk's result for a frame is kept until the clip is assembled (and across a resume)."""
    return folder / f"chunk{chunk}_{frame:05d}.png"


def assembled(plan: ChunkPlan, folder: Path) -> Iterator[Tensor]:
    """The clip's frames out of the chunks' results, cross-faded across each overlap: (3, h, w) in [0, 1], one at a
    time (a long clip in float32 would not fit in memory)."""
    missing = [
        path
        for frame in range(plan.frames)
        for chunk, _ in plan.sources(frame)
        if not (path := chunk_frame_file(folder, chunk, frame)).is_file()
    ]
    if missing:  # before the first frame is written
        raise UsageError(
            f"{missing[0]} is missing: the frames of an earlier run were removed; run again without --ckpt_path"
        )
    for frame in range(plan.frames):
        parts = []
        for chunk, weight in plan.sources(frame):
            parts.append(weight * image_to_tensor(load_image(chunk_frame_file(folder, chunk, frame), "painted frame")))
        yield sum(parts)
