import torch

from lit_nst.objective.preprocessing import Preprocess


def test_caffe_is_bgr_times_255_minus_the_mean_pixel():
    image = torch.tensor([0.2, 0.5, 1.0]).view(1, 3, 1, 1)  # R, G, B
    out = Preprocess("caffe")(image).flatten()
    expected = torch.tensor([1.0 * 255 - 103.939, 0.5 * 255 - 116.779, 0.2 * 255 - 123.68])  # B, G, R
    assert torch.allclose(out, expected, atol=1e-4)


def test_torchvision_is_imagenet_mean_and_std_on_rgb():
    image = torch.tensor([0.2, 0.5, 1.0]).view(1, 3, 1, 1)
    out = Preprocess("torchvision")(image).flatten()
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    assert torch.allclose(out, (torch.tensor([0.2, 0.5, 1.0]) - mean) / std, atol=1e-6)


def test_preprocessing_constants_are_not_checkpointed():
    assert Preprocess("caffe").state_dict() == {}
