import torch

from lit_nst.objective.losses import content_loss, gram, mean_squared_error, region_weights, style_loss, total_variation


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
    assert torch.allclose(gram(features * region_weights(mask)), gram(features[..., 1:4, 2:7]), atol=1e-6)
    # a uniformly grey mask weights every position alike: the plain Gram again
    assert torch.allclose(gram(features * region_weights(torch.full((1, 1, 6, 8), 0.3))), gram(features), atol=1e-6)


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


def test_style_loss_compares_grams_by_mean_squared_error():
    features = {"a": torch.tensor([[[[1.0, 1.0]], [[0.0, 2.0]]]])}  # (1, 2, 1, 2): F = [[1,1],[0,2]]
    target = torch.zeros(1, 2, 2)
    # G = F Fᵀ / (2·1·2) = [[2, 2], [2, 4]] / 4; mean of squares = (0.25 + 0.25 + 0.25 + 1) / 4
    assert torch.allclose(style_loss(features, {"a": target}, {"a": 1.0}), torch.tensor([1.75 / 4]))


def test_total_variation_of_a_constant_image_is_zero():
    assert total_variation(torch.full((2, 3, 8, 8), 0.3)).abs().max() == 0


def test_total_variation_matches_formula():
    image = torch.tensor([[[[0.0, 1.0], [1.0, 1.0]]]])
    # vertical differences: (1, 0) -> mean 0.5; horizontal: (1, 0) -> mean 0.5
    assert torch.allclose(total_variation(image), torch.tensor([1.0]))


def test_losses_are_per_image():
    prediction = torch.stack([torch.zeros(2, 3, 3), torch.ones(2, 3, 3)])
    assert torch.allclose(mean_squared_error(prediction, torch.zeros_like(prediction)), torch.tensor([0.0, 1.0]))
