"""The terms of the Gatys et al. objective as pure functions: no I/O, no Lightning.

Every function keeps the batch dimension apart (one job per image) and returns one value per image,
so that jobs optimised together never influence each other.
"""

import torch
from torch import Tensor


def gram(features: Tensor, mask: Tensor | None = None) -> Tensor:
    """Gram matrix G = F Fᵀ / (C·H·W) of each image, always in float32; guided by `mask` if given.

    Args:
        features: (B, C, H, W) activations, in any floating dtype.
        mask: (B or 1, 1, H, W) weights of the positions, e.g. a region in [0, 1]. The guided Gram
            (F∘m)(F∘m)ᵀ / (C·Σm²) of Gatys et al. (2017) is the plain Gram of the region alone: a mask of
            ones gives the plain Gram, so a region's Gram is comparable with a whole painting's.

    Returns:
        (B, C, C) float32 Grams.
    """
    batch, channels, height, width = features.shape
    # Under bf16 autocast the matmul would run (and sum H·W products) in bf16; Grams must not.
    with torch.autocast(features.device.type, enabled=False):
        features = features.float()
        if mask is None:
            normaliser = channels * height * width
        else:
            features = features * mask
            normaliser = channels * mask.square().flatten(1).sum(dim=1).view(-1, 1, 1)
        flat = features.reshape(batch, channels, height * width)  # (B, C, HW)
        return torch.bmm(flat, flat.transpose(1, 2)) / normaliser


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
    masks: dict[str, Tensor] | None = None,
) -> Tensor:
    """Σ_l w_l · mean((G_l(x) − G_l(style))²), per image: shape (B,); G_l(x) guided by `masks[l]` if given."""
    return sum(
        weight * mean_squared_error(gram(features[name], None if masks is None else masks[name]), target_grams[name])
        for name, weight in layer_weights.items()
    )


def total_variation(image: Tensor) -> Tensor:
    """mean of squared vertical plus mean of squared horizontal neighbour differences, per image: (B,)."""
    vertical = image[..., 1:, :] - image[..., :-1, :]
    horizontal = image[..., :, 1:] - image[..., :, :-1]
    return vertical.float().square().flatten(1).mean(dim=1) + horizontal.float().square().flatten(1).mean(dim=1)
