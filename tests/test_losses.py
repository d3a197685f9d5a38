import pytest
import torch

from lit_nst.objective.losses import content_loss, mean_squared_error, total_variation
from lit_nst.objective.statistics import (
    GaussianW2,
    Moments,
    SlicedWasserstein,
    moment_sums,
    normalised,
    statistic,
)


def moments(features: torch.Tensor, mask: torch.Tensor | None = None, with_mean: bool = True) -> Moments:
    count = features.shape[-2] * features.shape[-1] if mask is None else mask.square().sum().item()
    return normalised(*moment_sums(features, mask, with_mean), count)


def gram(features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """The (guided) Gram, as the `gram` statistic takes it."""
    return statistic("gram").target(moments(features, mask, with_mean=False))[0]


def test_gram_matches_formula_on_a_tiny_tensor():
    features = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [-1.0, 2.0]]]])  # (1, 2, 2, 2)
    flat = features.reshape(2, 4)
    expected = flat @ flat.T / (2 * 2 * 2)
    assert torch.allclose(gram(features)[0], expected)
    assert torch.allclose(expected, torch.tensor([[30.0, 7.0], [7.0, 6.0]]) / 8)


def test_gram_is_symmetric_with_channel_by_channel_shape():
    grams = gram(torch.randn(3, 5, 7, 6))
    assert grams.shape == (3, 5, 5)
    assert torch.allclose(grams, grams.transpose(1, 2))


def test_gram_never_mixes_the_images_of_a_batch():
    first, second = torch.randn(1, 4, 3, 3), torch.randn(1, 4, 3, 3)
    together = gram(torch.cat([first, second]))
    assert torch.allclose(together[0], gram(first)[0])
    assert torch.allclose(together[1], gram(second)[0])


def test_guided_gram_of_a_region_is_the_gram_of_that_region_alone():
    features = torch.randn(2, 4, 6, 8)
    mask = torch.zeros(1, 1, 6, 8)
    mask[..., 1:4, 2:7] = 1.0
    assert torch.allclose(gram(features, mask), gram(features[..., 1:4, 2:7]), atol=1e-6)
    # a uniformly grey mask weights every position alike: the plain Gram again
    assert torch.allclose(gram(features, torch.full((1, 1, 6, 8), 0.3)), gram(features), atol=1e-6)
    # and so for the mean the other statistics take
    assert torch.allclose(moments(features, mask).mean, features[..., 1:4, 2:7].mean(dim=(2, 3)), atol=1e-6)


def test_gram_is_float32_under_bf16_autocast():
    features = torch.randn(1, 8, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        grams = gram(features.bfloat16())
    assert grams.dtype == torch.float32


def test_content_loss_is_weighted_sum_of_layer_means():
    features = {"a": torch.tensor([[[[1.0, 2.0]]]]), "b": torch.tensor([[[[0.0, 0.0, 3.0]]]])}
    targets = {"a": torch.tensor([[[[0.0, 0.0]]]]), "b": torch.tensor([[[[0.0, 0.0, 0.0]]]])}
    loss = content_loss(features, targets, {"a": 0.25, "b": 0.75})
    # a: mean(1, 4) = 2.5; b: mean(0, 0, 9) = 3
    assert torch.allclose(loss, torch.tensor([0.25 * 2.5 + 0.75 * 3.0]))


def test_the_gram_loss_compares_grams_by_mean_squared_error():
    features = torch.tensor([[[[1.0, 1.0]], [[0.0, 2.0]]]])  # (1, 2, 1, 2): F = [[1,1],[0,2]]
    target = torch.zeros(1, 2, 2)
    # G = F Fᵀ / (2·1·2) = [[2, 2], [2, 4]] / 4; mean of squares = (0.25 + 0.25 + 0.25 + 1) / 4
    assert torch.allclose(statistic("gram").loss(moments(features), (target,)), torch.tensor([1.75 / 4]))


def test_total_variation_of_a_constant_image_is_zero():
    assert total_variation(torch.full((2, 3, 8, 8), 0.3)).abs().max() == 0


def test_total_variation_matches_formula():
    image = torch.tensor([[[[0.0, 1.0], [1.0, 1.0]]]])
    # vertical differences: (1, 0) -> mean 0.5; horizontal: (1, 0) -> mean 0.5
    assert torch.allclose(total_variation(image), torch.tensor([1.0]))


def test_losses_are_per_image():
    prediction = torch.stack([torch.zeros(2, 3, 3), torch.ones(2, 3, 3)])
    assert torch.allclose(mean_squared_error(prediction, torch.zeros_like(prediction)), torch.tensor([0.0, 1.0]))


def gaussian_moments(mean: torch.Tensor, covariance: torch.Tensor) -> Moments:
    return Moments(mean[None].float(), (covariance + torch.outer(mean, mean))[None].float())


def test_w2_is_the_closed_form_wasserstein_distance_of_two_gaussians():
    # Covariances that commute (one rotation, two spectra): W2² = |μ1 − μ2|² + Σ (√a_i − √b_i)²; the loss is W2² / C.
    generator = torch.Generator().manual_seed(0)
    rotation, _ = torch.linalg.qr(torch.randn(6, 6, dtype=torch.float64, generator=generator))
    spectra = [torch.rand(6, dtype=torch.float64, generator=generator) + 0.1 for _ in range(2)]
    means = [torch.randn(6, dtype=torch.float64, generator=generator) for _ in range(2)]
    first, second = (
        gaussian_moments(m, rotation @ torch.diag(s) @ rotation.T) for m, s in zip(means, spectra, strict=True)
    )
    w2 = GaussianW2()
    closed = (means[0] - means[1]).square().sum() + (spectra[0].sqrt() - spectra[1].sqrt()).square().sum()
    assert w2.loss(first, w2.target(second)).item() == pytest.approx(closed.item() / 6, rel=1e-6)
    # and for two that do not commute, it is symmetric, as a distance is
    other = gaussian_moments(means[1], torch.diag(spectra[1]))
    assert w2.loss(first, w2.target(other)).item() == pytest.approx(w2.loss(other, w2.target(first)).item(), rel=1e-5)


@pytest.mark.parametrize("name", ["gram", "w2", "gram+meanstd", "sliced"])
def test_each_style_loss_is_zero_for_the_paintings_own_statistics_and_positive_otherwise(name):
    generator = torch.Generator().manual_seed(1)
    painting = torch.randn(1, 8, 12, 10, generator=generator).relu()  # more positions than channels, as in VGG
    other = torch.randn(1, 8, 12, 10, generator=generator).relu() * 1.5
    loss = statistic(name)
    if name == "sliced":
        directions = loss.directions(8, "relu1_1", painting.device)
        target = loss.target([painting], [1.0], directions, 120)
        shuffled = painting.flatten(2)[..., torch.randperm(120, generator=generator)].reshape(painting.shape)
        own = loss.loss(shuffled, directions, None, target)  # a distribution: where each feature lies does not count
        assert own.item() == 0 and loss.loss(other, directions, None, target).item() > 0.01
        return
    target = loss.target(moments(painting))
    assert abs(loss.loss(moments(painting), target).item()) <= 1e-5 * loss.loss(moments(other), target).item()


def test_sliced_blends_are_the_quantiles_of_the_mixture():
    loss = SlicedWasserstein()
    directions = torch.eye(2)  # the channels themselves
    low, high = torch.zeros(1, 2, 2, 2), torch.ones(1, 2, 2, 2)
    # An even mixture of 0s and 1s: its 8 quantiles are four 0s and four 1s, whatever the styles' sizes.
    mixed = loss.target([low, torch.ones(1, 2, 4, 4)], [0.5, 0.5], directions, 8)
    assert mixed[0, 0].tolist() == [0.0] * 4 + [1.0] * 4
    assert loss.target([low, high], [0.25, 0.75], directions, 4)[0, 1].tolist() == [0.0, 1.0, 1.0, 1.0]


def test_directions_are_unit_vectors_drawn_the_same_from_a_layers_name():
    first = SlicedWasserstein.directions(16, "relu3_1", torch.device("cpu"))
    assert torch.equal(first, SlicedWasserstein.directions(16, "relu3_1", torch.device("cpu")))
    assert not torch.equal(first, SlicedWasserstein.directions(16, "relu4_1", torch.device("cpu")))
    assert torch.allclose(first.norm(dim=0), torch.ones(16))


def test_style_statistics_are_float32_or_better_under_bf16_autocast():
    features = torch.randn(1, 8, 16, 16).relu()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        taken = moments(features.bfloat16())
        value = GaussianW2().loss(taken, GaussianW2().target(moments(features)))
    assert taken.mean.dtype == taken.second.dtype == value.dtype == torch.float32
