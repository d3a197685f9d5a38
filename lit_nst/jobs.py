"""A job: one picture to paint, its content photo, its styles, blend and masks, and what a resume must share."""

from dataclasses import dataclass, field
from pathlib import Path

from torch import Tensor

from lit_nst.errors import UsageError
from lit_nst.files import file_sha256
from lit_nst.objective.canvas import image_shape
from lit_nst.objective.objective import StyleRegion


@dataclass
class StyleJob:
    """One stylisation: a content image painted in a style, a blend of styles, or styles by region.

    Images are (3, H, W) RGB in [0, 1]; `blend` holds each style's weight in the target Grams (sum 1).
    Masks are (1, H, W) in [0, 1] in the content's frame: `style_masks[i]` is where style i paints (None:
    wherever the picture may change), `content_mask` where the picture may change (None: everywhere).
    """

    content_path: Path
    style_paths: list[Path]
    content: Tensor
    styles: list[Tensor]
    blend: list[float]
    style_mask_paths: list[Path | None] = field(default_factory=list)
    style_masks: list[Tensor | None] = field(default_factory=list)
    content_mask_path: Path | None = None
    content_mask: Tensor | None = None
    chunk: int | None = None  # of a clip cut into several chunks (lit_nst.video.clips)

    def regions(self, styles: list[Tensor] | None = None) -> list[StyleRegion]:
        """The job's style regions: styles sharing a mask (or having none) are blended by their weights,
        and each region's term has full weight, so a region is painted as strongly as a whole picture."""
        styles = self.styles if styles is None else styles
        mask_paths = self.style_mask_paths or [None] * len(styles)
        members: dict[Path | None, list[int]] = {}
        for index, path in enumerate(mask_paths):
            members.setdefault(path, []).append(index)
        regions = []
        for path, indices in members.items():
            total = sum(self.blend[index] for index in indices)
            if total == 0:
                continue  # every style of this region has blend weight 0
            mask = self.content_mask if path is None else self.style_masks[indices[0]]
            regions.append(StyleRegion([styles[i] for i in indices], [self.blend[i] / total for i in indices], mask))
        return regions

    @property
    def shape(self) -> tuple[int, int]:
        """(h, w) of the content, and so of the job's picture."""
        return image_shape(self.content)

    @property
    def style(self) -> Tensor:
        """The (main) style image, for pictures of the job."""
        return self.styles[max(range(len(self.blend)), key=self.blend.__getitem__)]

    @property
    def name(self) -> str:
        name = f"{self.content_path.stem}__{'+'.join(path.stem for path in self.style_paths)}"
        return name if self.chunk is None else f"{name}_chunk{self.chunk}"

    def identity(self) -> dict[str, object]:
        """The files' contents, not their names: a resume must paint the same pictures."""
        identity = {
            "content": file_sha256(self.content_path),
            "styles": [file_sha256(path) for path in self.style_paths],
            "blend": self.blend,
        }
        # Only when set, so checkpoints written before masks existed still resume.
        if any(path is not None for path in self.style_mask_paths):
            identity["style_masks"] = [None if path is None else file_sha256(path) for path in self.style_mask_paths]
        if self.content_mask_path is not None:
            identity["content_mask"] = file_sha256(self.content_mask_path)
        if self.chunk is not None:
            identity["chunk"] = self.chunk
        return identity


def check_names_unique(jobs: list[StyleJob]) -> None:
    """Every job's result has a file of its own: two jobs of one name would overwrite each other."""
    seen: dict[str, StyleJob] = {}
    for job in jobs:
        if job.name in seen:
            first = seen[job.name]
            raise UsageError(
                f"two jobs would both write {job.name}.png ({first.content_path} with {first.style_paths[0]}, and "
                f"{job.content_path} with {job.style_paths[0]}): give each image a file name of its own"
            )
        seen[job.name] = job


def normalised_blend(weights: list[float], styles: int) -> list[float]:
    """Blend weights summing to 1, one per style."""
    if len(weights) != styles:
        raise UsageError(f"--data.style_blend has {len(weights)} weights for {styles} style images")
    if any(weight < 0 for weight in weights) or sum(weights) <= 0:
        raise UsageError(f"--data.style_blend must be non-negative with a positive sum, got {weights}")
    return [weight / sum(weights) for weight in weights]
