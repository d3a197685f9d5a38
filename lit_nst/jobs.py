"""A job: one picture to paint, its content photo, its styles, blend and masks, and what a resume must share."""

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from torch import Tensor

from lit_nst.errors import UsageError
from lit_nst.files import file_sha256
from lit_nst.images import image_to_tensor, load_image, load_mask, resize_longer_side
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
        # Only when set: the identity seeds --model.init noise (objective/initial.py) and names the run's folder
        # (lit_nst.runs), so a run without masks or chunks keeps the noise and the folder it has always had.
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


def paired(
    contents: list[str], styles: list[str], pairs: str, one_job_per_content: bool, style_masks: list | None
) -> list[tuple[str, list[str]]]:
    """Each job's content and styles: every pair (`product`) or pairs in order (`zip`); `one_job_per_content` (a
    blend or masks), each content in all the styles."""
    if not contents or not styles:
        raise UsageError("give at least one --data.content and one --data.style image")
    if style_masks is not None and len(style_masks) != len(styles):
        raise UsageError(
            f"--data.style_masks has {len(style_masks)} masks for {len(styles)} styles: give one per style "
            "(null for a style that paints everywhere)"
        )
    if one_job_per_content:
        if pairs == "zip":
            raise UsageError(
                "--data.pairs zip does not apply with --data.style_blend or --data.style_masks: each content then "
                "makes one job painted in all the styles; drop --data.pairs, or the blend for one job per pair"
            )
        return [(content, styles) for content in contents]
    if pairs == "zip" and len(contents) != len(styles):
        raise UsageError(f"--data.pairs zip needs as many contents as styles, got {len(contents)} and {len(styles)}")
    pairing = itertools.product(contents, styles) if pairs == "product" else zip(contents, styles, strict=True)
    return [(content, [style]) for content, style in pairing]


class JobMaker:
    """Makes jobs at a size: loads the content, the styles (`style_scale` times as large) and the masks, in the
    content's frame. `too_small(role)` names the flags that make a picture too small."""

    def __init__(
        self,
        blend: list[float],
        style_masks: list[Path | None],
        content_mask: Path | None,
        style_scale: float,
        too_small: Callable[[str], str],
    ) -> None:
        self.blend = blend
        self.style_masks = style_masks
        self.content_mask = content_mask
        self.style_scale = style_scale
        self.too_small = too_small

    def jobs_at(self, groups: list[tuple[str, list[str]]], size: int) -> list[StyleJob]:
        """Each (content, styles) group's job at `size`, each file loaded once."""
        contents = {c: self.load(c, "content", size) for c, _ in groups}
        styles = {s: self.load(s, "style", self.style_size(size)) for _, group in groups for s in group}
        return [
            self.job(Path(c), [Path(s) for s in group], contents[c], [styles[s] for s in group]) for c, group in groups
        ]

    def job(self, content_path: Path, style_paths: list[Path], content: Tensor, styles: list[Tensor]) -> StyleJob:
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

    def style_size(self, size: int) -> int:
        return round(size * self.style_scale)

    def load(self, path: str, role: str, size: int) -> Tensor:
        image = load_image(path, role)
        return image_to_tensor(resize_longer_side(image, size, f"{role} image {path}", self.too_small(role)))
