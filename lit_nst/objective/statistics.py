"""Style statistics: what of a style layer's features the style term matches, and how far apart two of them are.

Every statistic here but `sliced` is a function of a layer's first two moments, and those are sums over positions:
with weights a (1, or a region's mask squared, as the guided Gram of Gatys et al. 2017 has it),
N = Σ a, S1 = Σ a·f and S2 = Σ a·f fᵀ. So blocks add them up (lit_nst.objective.tiling), and styles blend by mixing
the normalised moments S1/N and S2/N, which mix linearly where covariances and standard deviations do not.

- `gram`: Gatys et al. (2016). G = (S2/N) / C; mean((G − Gs)²).
- `w2`: the Wasserstein-2 distance between Gaussians fitted to the features (as crowsonkb/style-transfer-pytorch):
  mean((μ − μs)²) + tr(Σ + Σs − 2 (Σs^½ Σ Σs^½)^½) / C.
- `gram+meanstd`: the Gram term plus mean((μ − μs)²) + mean((σ − σs)²) per channel (Galerne et al., SPST 2024).
- `sliced`: the sliced Wasserstein distance of Heitz et al. (CVPR 2021): the features projected on C fixed random
  unit directions, each projection's values sorted and matched to the painting's quantiles, mean squared
  difference. Not a sum over positions: it cannot be evaluated in blocks.
"""

import zlib
from typing import Literal, NamedTuple

import torch
from torch import Tensor

StyleLossName = Literal["gram", "w2", "gram+meanstd", "sliced"]
STYLE_LOSSES: tuple[str, ...] = ("gram", "w2", "gram+meanstd", "sliced")
# Relative to the largest eigenvalue: below it, a direction of a covariance (rank-deficient where a layer has fewer
# positions than channels) counts as none, so that the square root's gradient stays finite.
EIGENVALUE_FLOOR = 1e-8


class Moments(NamedTuple):
    """A layer's normalised moments, per image: mean (B, C) or None where unused, second (B, C, C)."""

    mean: Tensor | None
    second: Tensor


def moment_sums(features: Tensor, mask: Tensor | None, with_mean: bool) -> tuple[Tensor | None, Tensor]:
    """(S1, S2) of (B, C, H, W) `features` weighted by a = mask² (1 without a mask), in float32."""
    with torch.autocast(features.device.type, enabled=False):
        flat = features.float()
        weighted = flat if mask is None else flat * mask.float()  # √a · f
        flat_weighted = weighted.flatten(2)
        second = torch.bmm(flat_weighted, flat_weighted.transpose(1, 2))
        if not with_mean:
            return None, second
        first = (weighted if mask is None else weighted * mask.float()).sum(dim=(2, 3))
        return first, second


def normalised(first: Tensor | None, second: Tensor, count: float) -> Moments:
    """The moments of sums over `count` (Σ a) positions."""
    return Moments(None if first is None else first / count, second / count)


def sqrtm_psd(matrix: Tensor) -> Tensor:
    """The square root of a symmetric positive semi-definite (…, C, C) matrix, by its eigendecomposition."""
    values, vectors = torch.linalg.eigh(matrix)
    floor = values.amax(dim=-1, keepdim=True).clamp(min=0) * EIGENVALUE_FLOOR
    return (vectors * values.clamp(min=0).maximum(floor).sqrt().unsqueeze(-2)) @ vectors.transpose(-1, -2)


class Gram:
    """Gatys et al.'s statistic; and what every moment statistic offers: its target from a painting's moments (once a
    stage) and its loss from an image's (each step)."""

    name = "gram"
    uses_mean = False  # whether it needs S1 as well as S2
    additive = True  # a function of sums over positions, so exact in blocks

    def target(self, moments: Moments) -> tuple[Tensor, ...]:
        return (moments.second / moments.second.shape[-1],)

    def loss(self, moments: Moments, target: tuple[Tensor, ...]) -> Tensor:
        """(B,): how far the image's statistic is from the target."""
        gram = moments.second / moments.second.shape[-1]
        return (gram - target[0]).square().flatten(1).mean(dim=1)


class GaussianW2:
    """The Wasserstein-2 distance between the Gaussians fitted to the image's and the painting's features, / C."""

    name, uses_mean, additive = "w2", True, True

    def target(self, moments: Moments) -> tuple[Tensor, ...]:
        covariance = _covariance(moments)
        return moments.mean.double(), covariance, sqrtm_psd(covariance)

    def loss(self, moments: Moments, target: tuple[Tensor, ...]) -> Tensor:
        mean, covariance, root = target
        own = _covariance(moments)
        inner = root @ own @ root
        # tr((Σs^½ Σ Σs^½)^½) is the sum of the square roots of its eigenvalues; eigenvalues have a stable gradient
        # where eigenvectors do not. Those under the floor count as 0, with no gradient.
        values = torch.linalg.eigvalsh((inner + inner.transpose(-1, -2)) / 2)
        floor = values.detach().amax(dim=-1, keepdim=True).clamp(min=0) * EIGENVALUE_FLOOR
        cross = torch.where(values > floor, values.clamp(min=floor).sqrt(), 0.0).sum(dim=-1)
        traces = own.diagonal(dim1=-2, dim2=-1).sum(-1) + covariance.diagonal(dim1=-2, dim2=-1).sum(-1)
        means = (moments.mean.double() - mean).square().mean(dim=-1)
        return (means + (traces - 2 * cross) / own.shape[-1]).float()


def _covariance(moments: Moments) -> Tensor:
    """Σ = E[f fᵀ] − μ μᵀ, subtracted in float64 (the moments themselves are float32 sums)."""
    mean = moments.mean.double()
    return moments.second.double() - mean.unsqueeze(-1) * mean.unsqueeze(-2)


class GramMeanStd(Gram):
    """The Gram term, plus each channel's mean and standard deviation matched (Galerne et al., SPST)."""

    name, uses_mean = "gram+meanstd", True

    def target(self, moments: Moments) -> tuple[Tensor, ...]:
        return (*super().target(moments), moments.mean, _deviation(moments))

    def loss(self, moments: Moments, target: tuple[Tensor, ...]) -> Tensor:
        gram, mean, deviation = target
        means = (moments.mean - mean).square().mean(dim=1)
        deviations = (_deviation(moments) - deviation).square().mean(dim=1)
        return super().loss(moments, (gram,)) + means + deviations


def _deviation(moments: Moments) -> Tensor:
    """Each channel's standard deviation, √(E[f²] − μ²), subtracted in float64 as the covariance is."""
    variance = moments.second.diagonal(dim1=-2, dim2=-1).double() - moments.mean.double().square()
    return variance.clamp(min=1e-8).sqrt().float()


class SlicedWasserstein:
    """Heitz et al.'s sliced Wasserstein loss on one layer, over C fixed random unit directions (a layer's own seed,
    so a resume and every rank draw the same): fixed, not redrawn each step, so that L-BFGS optimises one function."""

    name, uses_mean, additive = "sliced", False, False

    @staticmethod
    def directions(channels: int, layer: str, device: torch.device) -> Tensor:
        """(C, C): C unit directions, drawn from the layer's name (every process and every resume the same)."""
        generator = torch.Generator().manual_seed(zlib.crc32(layer.encode()))
        directions = torch.randn(channels, channels, generator=generator)
        return (directions / directions.norm(dim=0, keepdim=True)).to(device)

    @staticmethod
    def projections(features: Tensor, directions: Tensor, keep: Tensor | None) -> Tensor:
        """(B, C, H, W) features -> (B, D, N) projections on the directions, of the kept positions (all if None);
        positions last, so that sorting them runs along contiguous memory."""
        with torch.autocast(features.device.type, enabled=False):
            flat = features.float().flatten(2)  # (B, C, HW)
            if keep is not None:
                flat = flat[..., keep]
            return directions.T @ flat

    def target(self, styles: list[Tensor], blend: list[float], directions: Tensor, count: int) -> Tensor:
        """(1, D, count): the quantiles at (k + ½)/count of the blend of the styles' projected features."""
        values, weights = [], []
        for features, share in zip(styles, blend, strict=True):
            projected = self.projections(features, directions, None)[0]  # (D, N_i)
            values.append(projected)
            weights.append(torch.full((projected.shape[1],), share / projected.shape[1], device=projected.device))
        values, weights = torch.cat(values, dim=1), torch.cat(weights)
        order = values.argsort(dim=1)  # (D, N)
        cumulative = weights[order].cumsum(dim=1)
        levels = (torch.arange(count, device=values.device) + 0.5) / count
        at = torch.searchsorted(cumulative, levels.expand(len(values), -1).contiguous())
        at = at.clamp(max=values.shape[1] - 1)  # (D, count): the rank of each quantile
        return values.gather(1, order.gather(1, at))[None]

    def loss(self, features: Tensor, directions: Tensor, keep: Tensor | None, target: Tensor) -> Tensor:
        projected = self.projections(features, directions, keep).sort(dim=-1).values
        return (projected - target).square().flatten(1).mean(dim=1)


StyleStatistic = Gram | GaussianW2 | GramMeanStd | SlicedWasserstein


def statistic(name: str) -> StyleStatistic:
    """The statistic called `name` (--model.style_loss)."""
    return {"gram": Gram, "w2": GaussianW2, "gram+meanstd": GramMeanStd, "sliced": SlicedWasserstein}[name]()


# --model.style_weight where it is not given, by --model.style_loss: a like balance of photo and painting
# (BENCHMARKS.md, "Style losses").
DEFAULT_STYLE_WEIGHTS = {"gram": 50.0, "w2": 7.0, "gram+meanstd": 25.0, "sliced": 80.0}


def style_weight(loss: str, weight: float | None) -> float:
    return DEFAULT_STYLE_WEIGHTS[loss] if weight is None else weight
