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
    def set_targets(self, contents: Tensor, styles: list[Tensor]) -> None:
        """Compute the content features and style Grams once; `styles[i]` is job i's (3, h, w) style image."""
        content_features = self.features(contents)
        for name in self.content_layers:
            self.register_buffer(f"content_target_{name}", content_features[name].float(), persistent=False)
        # Style images may differ in size from each other, so each is passed through the network alone.
        per_style = [self.features(style.unsqueeze(0)) for style in styles]
        for name in self.style_layers:
            grams = torch.cat([gram(features[name]) for features in per_style])  # (B, C, C)
            self.register_buffer(f"style_target_{name}", grams, persistent=False)

    def content_targets(self, job_ids: Tensor | None = None) -> dict[str, Tensor]:
        return {name: _select(getattr(self, f"content_target_{name}"), job_ids) for name in self.content_layers}

    def style_targets(self, job_ids: Tensor | None = None) -> dict[str, Tensor]:
        return {name: _select(getattr(self, f"style_target_{name}"), job_ids) for name in self.style_layers}

    def forward(self, image: Tensor, job_ids: Tensor | None = None) -> LossTerms:
        """Loss terms of `image` (B, 3, H, W), row b being job `job_ids[b]` (all jobs in order if None)."""
        features = self.features(image)
        content = content_loss(features, self.content_targets(job_ids), self.content_layers)
        style = style_loss(features, self.style_targets(job_ids), self.style_layers)
        tv = total_variation(image)
        total = self.content_weight * content + self.style_weight * style + self.tv_weight * tv
        return LossTerms(content, style, tv, total)


def _select(targets: Tensor, job_ids: Tensor | None) -> Tensor:
    return targets if job_ids is None else targets[job_ids]
