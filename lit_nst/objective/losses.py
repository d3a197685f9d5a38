"""The terms of the Gatys et al. objective as pure functions: no I/O, no Lightning.

Every function keeps the batch dimension apart (one job per image) and returns one value per image,
so that jobs optimised together never influence each other.
"""

from torch import Tensor


def mean_squared_error(prediction: Tensor, target: Tensor) -> Tensor:
    """Mean over all but the batch dimension of the squared difference, in float32: shape (B,)."""
    difference = prediction.float() - target.float()
    return difference.square().flatten(1).mean(dim=1)


def content_loss(features: dict[str, Tensor], targets: dict[str, Tensor], layer_weights: dict[str, float]) -> Tensor:
    """Σ_l w_l · mean((F_l(x) − F_l(content))²), per image: shape (B,)."""
    return sum(weight * mean_squared_error(features[name], targets[name]) for name, weight in layer_weights.items())


def total_variation(image: Tensor) -> Tensor:
    """mean of squared vertical plus mean of squared horizontal neighbour differences, per image: (B,)."""
    vertical = image[..., 1:, :] - image[..., :-1, :]
    horizontal = image[..., :, 1:] - image[..., :, :-1]
    return vertical.float().square().flatten(1).mean(dim=1) + horizontal.float().square().flatten(1).mean(dim=1)
