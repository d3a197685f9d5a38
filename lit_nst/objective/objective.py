"""The weighted Gatys et al. objective over a frozen backbone, with its targets computed once."""

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn
from torch.nn.functional import interpolate

from lit_nst.errors import UsageError
from lit_nst.objective.backbone import VGGFeatures
from lit_nst.objective.canvas import crop, image_shape
from lit_nst.objective.losses import content_loss, total_variation
from lit_nst.objective.preprocessing import Preprocess
from lit_nst.objective.statistics import (
    Gram,
    Moments,
    SlicedWasserstein,
    StyleStatistic,
    moment_sums,
    normalised,
    statistic,
    style_weight,
)
from lit_nst.objective.weights import weight_source


class StyleRegion(NamedTuple):
    """Styles painted into one region of a job's picture.

    `styles` are (3, h, w) images blended by `blend` (weights summing to 1); `mask` is (1, H, W) in [0, 1]
    in the content's frame, white where the region is, or None for the whole picture.
    """

    styles: list[Tensor]
    blend: list[float]
    mask: Tensor | None = None


class RegionTargets(NamedTuple):
    targets: dict[str, tuple[Tensor, ...]]  # per style layer: the statistic of the blend of the region's styles
    masks: dict[str, Tensor] | None  # (1, 1, h_l, w_l) per style layer: the region at that layer's size, in [0, 1]
    counts: dict[str, float]  # per style layer: Σ mask² (its positions where there is no mask), the moments' N
    keep: dict[str, Tensor] | None = None  # for `sliced` under a mask: the positions it compares (mask ≥ ½)


class JobTargets(NamedTuple):
    shape: tuple[int, int]  # (h, w) of the job's picture
    content: dict[str, Tensor]  # (1, C, h_l, w_l) per content layer
    regions: list[RegionTargets]


class LossTerms(NamedTuple):
    """Each term per job, shape (B,): unweighted content, style and tv, and the weighted total."""

    content: Tensor
    style: Tensor
    tv: Tensor
    total: Tensor


class StyleObjective(nn.Module):
    """total = content_weight · content + style_weight · style + tv_weight · tv, per job.

    The style term of a job is the sum over its regions of the region's (guided) statistic's loss
    (lit_nst.objective.statistics; the Gram by default); a job without masks has one region, the whole picture.
    """

    def __init__(
        self,
        backbone: VGGFeatures,
        preprocess: Preprocess,
        content_layers: dict[str, float],
        style_layers: dict[str, float],
        content_weight: float,
        style_weight: float,
        tv_weight: float,
        style_statistic: StyleStatistic | None = None,
    ) -> None:
        super().__init__()
        self.statistic = style_statistic or Gram()
        self.backbone = backbone
        self.preprocess = preprocess
        self.content_layers = content_layers
        self.style_layers = style_layers
        self.content_weight = content_weight
        self.style_weight = style_weight
        self.tv_weight = tv_weight
        self.targets: list[JobTargets] = []
        self.directions: dict[str, Tensor] = {}  # for `sliced`: each style layer's, once a stage

    def compile_backbone(self) -> None:
        """The backbone through torch.compile, once."""
        if not isinstance(self.backbone, torch._dynamo.eval_frame.OptimizedModule):
            self.backbone = torch.compile(self.backbone)

    def features(self, image: Tensor) -> dict[str, Tensor]:
        """(B, 3, H, W) RGB in [0, 1] -> activations of every layer the objective uses."""
        return self.backbone(self.preprocess(image))

    def content_maps(self, image: Tensor) -> dict[str, Tensor]:
        """(1, 3, H, W) -> the content layers' activations, in float32."""
        features = self.features(image)
        return {name: features[name].float() for name in self.content_layers}

    def style_moments(self, image: Tensor) -> dict[str, Moments]:
        """(1, 3, H, W) -> the style layers' normalised moments (lit_nst.objective.statistics)."""
        features = self.features(image)
        moments = {}
        for name in self.style_layers:
            sums = moment_sums(features[name], None, self.statistic.uses_mean)
            moments[name] = normalised(*sums, features[name].shape[-2] * features[name].shape[-1])
        return moments

    @torch.no_grad()
    def set_targets(
        self,
        contents: Sequence[Tensor],
        styles: Sequence[Tensor | list[StyleRegion]],
        content_maps: Callable[[Tensor], dict[str, Tensor]] | None = None,
        style_moments: Callable[[Tensor], dict[str, Moments]] | None = None,
    ) -> None:
        """Compute every job's content features and style statistics once, on the device of `contents`.

        Args:
            contents: job i's (3, h_i, w_i) content image; the jobs' shapes may differ.
            styles: job i's (3, h, w) style image (applied everywhere), or its list of regions.
            content_maps, style_moments: how to compute them, if not through the whole network at once (tiling.py).
        """
        content_maps, style_moments = content_maps or self.content_maps, style_moments or self.style_moments
        if isinstance(self.statistic, SlicedWasserstein):  # drawn once a stage, on the device, the same every time
            device = contents[0].device
            channels = self.backbone.channels
            self.directions = {
                name: self.statistic.directions(channels[name], name, device) for name in self.style_layers
            }
        self.targets = []
        for content, job_styles in zip(contents, styles, strict=True):
            # Every image through the network alone, as in `forward`, so a job's targets do not depend on the batch.
            regions = [StyleRegion([job_styles], [1.0])] if isinstance(job_styles, Tensor) else job_styles
            shape = image_shape(content)
            self.targets.append(
                JobTargets(
                    shape=shape,
                    content=content_maps(content.unsqueeze(0)),
                    regions=[region_targets(self, region, shape, style_moments) for region in regions],
                )
            )

    def forward(
        self,
        images: Tensor | Sequence[Tensor],
        job_ids: Tensor | None = None,
        job_terms: Callable[[Tensor, int], LossTerms] | None = None,
    ) -> LossTerms:
        """Loss terms of the jobs `job_ids` (all if None), job j's picture being the corner of `images[j]`.

        `images` is the (jobs, 3, H, W) canvas (lit_nst.objective.canvas) or a list of each job's (3, h, w) picture.
        `job_terms(picture, job)` evaluates one job, if not through the whole network at once (tiling.py).
        """
        job_terms = job_terms or self.job_terms
        jobs = range(len(self.targets)) if job_ids is None else job_ids.tolist()  # one host sync per step
        # One job at a time through the network: a batch changes the convolutions' float rounding, which
        # L-BFGS amplified to 4/255 between a job run alone and in a batch after 15 steps.
        per_job = [job_terms(crop(images[job], self.targets[job].shape).unsqueeze(0), job) for job in jobs]
        if not per_job:  # a DDP rank with no job still takes part in the gradient exchange
            zero = images[0].sum() * 0.0
            return LossTerms(zero[None][:0], zero[None][:0], zero[None][:0], zero[None][:0] + zero)
        return LossTerms(*(torch.cat(terms) for terms in zip(*per_job, strict=True)))

    def job_terms(self, image: Tensor, job: int) -> LossTerms:
        """The terms of job `job` for its (1, 3, h, w) picture."""
        features = self.features(image)
        targets = self.targets[job]
        content = content_loss(features, targets.content, self.content_layers)
        style = sum(self.style_term(features, region) for region in targets.regions)
        tv = total_variation(image)
        total = self.content_weight * content + self.style_weight * style + self.tv_weight * tv
        return LossTerms(content, style, tv, total)

    def style_term(self, features: dict[str, Tensor], region: RegionTargets) -> Tensor:
        """Σ_l w_l · the statistic's loss at layer l, of one region, per image: (B,)."""
        total = 0.0
        for name, weight in self.style_layers.items():
            layer = features[name]
            if isinstance(self.statistic, SlicedWasserstein):
                keep = None if region.keep is None else region.keep[name]
                loss = self.statistic.loss(layer, self.directions[name], keep, region.targets[name])
            else:
                mask = None if region.masks is None else region.masks[name]
                loss = self.moments_loss(name, moment_sums(layer, mask, self.statistic.uses_mean), region)
            total = total + weight * loss
        return total

    def moments_loss(self, name: str, sums: tuple[Tensor | None, Tensor], region: RegionTargets) -> Tensor:
        """The statistic's loss at layer `name` of a region, from its moment sums (Σ a·f or None, Σ a·f fᵀ)."""
        return self.statistic.loss(normalised(*sums, region.counts[name]), region.targets[name])


def region_targets(
    objective: StyleObjective, region: StyleRegion, shape: tuple[int, int], style_moments: Callable
) -> RegionTargets:
    """A region's targets: the statistic of the blend of its styles at each style layer, with its mask and counts."""
    masks, counts, keep = region_masks(objective, region, shape)
    if isinstance(objective.statistic, SlicedWasserstein):
        per_style = [objective.features(style.unsqueeze(0)) for style in region.styles]
        targets = {}
        for name in objective.style_layers:
            count = counts[name] if keep is None else len(keep[name])
            styles = [features[name] for features in per_style]
            targets[name] = objective.statistic.target(styles, region.blend, objective.directions[name], int(count))
        return RegionTargets(targets, masks, counts, keep)
    per_style = [style_moments(style.unsqueeze(0)) for style in region.styles]
    # A blend of styles mixes their normalised moments, which mix linearly (for Grams: Gatys et al. 2017).
    targets = {}
    for name in objective.style_layers:
        mean = None
        if objective.statistic.uses_mean:
            mean = sum(weight * m[name].mean for weight, m in zip(region.blend, per_style, strict=True))
        second = sum(weight * m[name].second for weight, m in zip(region.blend, per_style, strict=True))
        targets[name] = objective.statistic.target(Moments(mean, second))
    return RegionTargets(targets, masks, counts)


def region_masks(
    objective: StyleObjective, region: StyleRegion, shape: tuple[int, int]
) -> tuple[dict | None, dict, dict | None]:
    """The region at each style layer's resolution (the fraction of each feature's cell inside it), its count
    Σ mask², and for `sliced` the positions compared; for no mask: None, the positions, None."""
    sizes = {
        name: (shape[0] // objective.backbone.strides[name], shape[1] // objective.backbone.strides[name])
        for name in objective.style_layers
    }
    if region.mask is None:
        return None, {name: float(h * w) for name, (h, w) in sizes.items()}, None
    mask = region.mask[None].to(region.styles[0].device, torch.float32)
    masks = {name: interpolate(mask, size=size, mode="area") for name, size in sizes.items()}
    counts = {name: float(layer.square().sum()) for name, layer in masks.items()}
    keep = None
    if isinstance(objective.statistic, SlicedWasserstein):
        # The positions mostly inside the region; at least the one most inside, where the region is tiny.
        keep = {name: _kept(layer.flatten()) for name, layer in masks.items()}
    return masks, counts, keep


def _kept(mask: Tensor) -> Tensor:
    kept = (mask >= 0.5).nonzero().squeeze(1)
    return kept if len(kept) else mask.argmax()[None]


def normalised_layer_weights(layers: Sequence[str], weights: Sequence[float] | None, group: str) -> dict[str, float]:
    """{layer: weight}, weights summing to 1 (equal by default)."""
    if not layers:
        raise UsageError(f"--model.{group}_layers is empty: name at least one layer, e.g. relu4_2")
    if len(set(layers)) != len(layers):
        raise UsageError(f"--model.{group}_layers names a layer twice: {list(layers)}")
    weights = [1.0] * len(layers) if weights is None else list(weights)
    if len(weights) != len(layers):
        raise UsageError(f"--model.{group}_layer_weights has {len(weights)} values for {len(layers)} {group} layers")
    if any(weight < 0 for weight in weights) or sum(weights) <= 0:
        raise UsageError(f"--model.{group}_layer_weights must be non-negative with a positive sum, got {weights}")
    total = sum(weights)
    return {layer: weight / total for layer, weight in zip(layers, weights, strict=True)}


def build_objective(settings: Mapping[str, Any]) -> StyleObjective:
    """The objective that the model's settings (`StyleTransfer`'s arguments, by name) describe."""
    for term in ("content_weight", "style_weight", "tv_weight"):
        if settings[term] is not None and settings[term] < 0:  # a negative weight rewards the term: garbage, fast
            raise UsageError(f"--model.{term} must be 0 or positive, got {settings[term]:g}")
    content = normalised_layer_weights(settings["content_layers"], settings["content_layer_weights"], "content")
    style = normalised_layer_weights(settings["style_layers"], settings["style_layer_weights"], "style")
    source = weight_source(settings["weights"])
    state_dict = source.state_dict(settings["arch"])
    backbone = VGGFeatures(settings["arch"], state_dict, [*content, *style], settings["pooling"])
    preprocess = Preprocess(settings["preprocessing"] or source.preprocessing)
    return StyleObjective(
        backbone,
        preprocess,
        content,
        style,
        content_weight=settings["content_weight"],
        style_weight=style_weight(settings.get("style_loss", "gram"), settings["style_weight"]),
        tv_weight=settings["tv_weight"],
        style_statistic=statistic(settings.get("style_loss", "gram")),
    )
