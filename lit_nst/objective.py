"""The weighted Gatys et al. objective over a frozen backbone, with its targets computed once."""

from typing import NamedTuple

import torch
from torch import Tensor, nn

from lit_nst.backbone import VGGFeatures
from lit_nst.losses import content_loss, gram, style_loss, total_variation
from lit_nst.preprocessing import Preprocess


class LossTerms(NamedTuple):
    """Each term per job, shape (B,): unweighted content, style and tv, and the weighted total."""

    content: Tensor
    style: Tensor
    tv: Tensor
    total: Tensor


class StyleObjective(nn.Module):
    """total = content_weight · content + style_weight · style + tv_weight · tv, per job."""

    def __init__(
        self,
        backbone: VGGFeatures,
        preprocess: Preprocess,
        content_layers: dict[str, float],
        style_layers: dict[str, float],
        content_weight: float,
        style_weight: float,
        tv_weight: float,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.preprocess = preprocess
        self.content_layers = content_layers
        self.style_layers = style_layers
        self.content_weight = content_weight
        self.style_weight = style_weight
        self.tv_weight = tv_weight

    def features(self, image: Tensor) -> dict[str, Tensor]:
        """(B, 3, H, W) RGB in [0, 1] -> activations of every layer the objective uses."""
        return self.backbone(self.preprocess(image))

    @torch.no_grad()
    def set_targets(
        self, contents: Tensor, styles: list[Tensor | list[Tensor]], blends: list[list[float]] | None = None
    ) -> None:
        """Compute the content features and style Grams once.

        Args:
            contents: (B, 3, H, W) content images, one per job.
            styles: job i's (3, h, w) style image, or its list of style images to blend.
            blends: job i's weight of each of its styles in the target Grams (default: one style, weight 1).
        """
        # Every image through the network alone, as in `forward`, so a job's targets do not depend on the batch.
        per_content = [self.features(content.unsqueeze(0)) for content in contents]
        for name in self.content_layers:
            features = torch.cat([job_features[name].float() for job_features in per_content])
            self.register_buffer(f"content_target_{name}", features, persistent=False)
        styles = [[style] if isinstance(style, Tensor) else list(style) for style in styles]
        blends = blends or [[1.0] * len(job_styles) for job_styles in styles]
        grams = {name: [] for name in self.style_layers}
        for job_styles, job_blend in zip(styles, blends, strict=True):
            per_style = [self.features(style.unsqueeze(0)) for style in job_styles]
            for name in self.style_layers:
                # A blend of styles is the weighted sum of their Grams (Gatys et al. 2017).
                grams[name].append(sum(weight * gram(f[name]) for weight, f in zip(job_blend, per_style, strict=True)))
        for name in self.style_layers:
            self.register_buffer(f"style_target_{name}", torch.cat(grams[name]), persistent=False)  # (B, C, C)

    def content_targets(self, job: int | None = None) -> dict[str, Tensor]:
        """Content features of job `job` as (1, C, h, w) views, or of every job."""
        return {name: _rows(getattr(self, f"content_target_{name}"), job) for name in self.content_layers}

    def style_targets(self, job: int | None = None) -> dict[str, Tensor]:
        """Style Grams of job `job` as (1, C, C) views, or of every job."""
        return {name: _rows(getattr(self, f"style_target_{name}"), job) for name in self.style_layers}

    def forward(self, image: Tensor, job_ids: Tensor | None = None) -> LossTerms:
        """Loss terms of `image` (B, 3, H, W), row b being job `job_ids[b]` (all jobs in order if None)."""
        jobs = range(image.shape[0]) if job_ids is None else job_ids.tolist()  # one host sync per step
        # One job at a time through the network: a batch changes the convolutions' float rounding, which
        # L-BFGS amplified to 4/255 between a job run alone and in a batch after 15 steps.
        per_job = [self._job_terms(image[row : row + 1], job) for row, job in enumerate(jobs)]
        if not per_job:  # a DDP rank with no job still takes part in the gradient exchange
            zero = image.sum() * 0.0
            return LossTerms(zero[None][:0], zero[None][:0], zero[None][:0], zero[None][:0] + zero)
        return LossTerms(*(torch.cat(terms) for terms in zip(*per_job, strict=True)))

    def _job_terms(self, image: Tensor, job: int) -> LossTerms:
        features = self.features(image)
        content = content_loss(features, self.content_targets(job), self.content_layers)
        style = style_loss(features, self.style_targets(job), self.style_layers)
        tv = total_variation(image)
        total = self.content_weight * content + self.style_weight * style + self.tv_weight * tv
        return LossTerms(content, style, tv, total)


def _rows(targets: Tensor, job: int | None) -> Tensor:
    # A slice, not an index lookup: a view of the stored targets, no per-step copy of the feature maps.
    return targets if job is None else targets[job : job + 1]
