"""The terms of the Gatys et al. objective as pure functions: no I/O, no Lightning.

Every function keeps the batch dimension apart (one job per image) and returns one value per image,
so that jobs optimised together never influence each other.
"""

import torch
from torch import Tensor


def gram(features: Tensor) -> Tensor:
    """Gram matrix G = F Fᵀ / (C·H·W) of each image, always in float32.

    Args:
        features: (B, C, H, W) activations, in any floating dtype.

    Returns:
        (B, C, C) float32 Grams.
    """
    _, channels, height, width = features.shape
    return gram_sum(features) / (channels * height * width)


def gram_sum(features: Tensor) -> Tensor:
    """F Fᵀ of each image, unnormalised, in float32: (B, C, H, W) -> (B, C, C). Sums over positions add up."""
    batch, channels, height, width = features.shape
    # Under bf16 autocast the matmul would run (and sum H·W products) in bf16; Grams must not.
    with torch.autocast(features.device.type, enabled=False):
        flat = features.float().reshape(batch, channels, height * width)  # (B, C, HW)
        return torch.bmm(flat, flat.transpose(1, 2))


def region_weights(mask: Tensor) -> Tensor:
    """A region's mask (…, 1, H, W) in [0, 1], scaled so that gram(F ∘ weights) is its guided Gram.

    The guided Gram of Gatys et al. (2017) is (F∘m)(F∘m)ᵀ / (C·Σm²): the Gram of the region alone, so a
    region's Gram is comparable with a whole painting's. Scaling m by √(H·W / Σm²) turns `gram`'s C·H·W
    into C·Σm², once, instead of summing the mask at every step.
    """
    height, width = mask.shape[-2:]
    return mask * (height * width / mask.float().square().sum()).sqrt()


def mean_squared_error(prediction: Tensor, target: Tensor) -> Tensor:
    """Mean over all but the batch dimension of the squared difference, in float32: shape (B,)."""
    difference = prediction.float() - target.float()
    return difference.square().flatten(1).mean(dim=1)


def content_loss(features: dict[str, Tensor], targets: dict[str, Tensor], layer_weights: dict[str, float]) -> Tensor:
    """Σ_l w_l · mean((F_l(x) − F_l(content))²), per image: shape (B,)."""
    return sum(weight * mean_squared_error(features[name], targets[name]) for name, weight in layer_weights.items())


def style_loss(
    features: dict[str, Tensor],
    target_grams: dict[str, Tensor],
    layer_weights: dict[str, float],
    regions: dict[str, Tensor] | None = None,
) -> Tensor:
    """Σ_l w_l · mean((G_l(x) − G_l(style))²), per image: shape (B,).

    With `regions` (per layer, `region_weights` of a mask), G_l(x) is the guided Gram of that region.
    """
    return sum(
        weight
        * mean_squared_error(
            gram(features[name] if regions is None else features[name] * regions[name]), target_grams[name]
        )
        for name, weight in layer_weights.items()
    )


def total_variation(image: Tensor) -> Tensor:
    """mean of squared vertical plus mean of squared horizontal neighbour differences, per image: (B,)."""
    vertical = image[..., 1:, :] - image[..., :-1, :]
    horizontal = image[..., :, 1:] - image[..., :, :-1]
    return vertical.float().square().flatten(1).mean(dim=1) + horizontal.float().square().flatten(1).mean(dim=1)
