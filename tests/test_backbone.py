import pytest
import torch
import torchvision

from lit_nst.errors import UsageError
from lit_nst.objective.backbone import VGGFeatures, layer_indices
from lit_nst.objective.weights import strip_features_prefix

from .helpers import random_vgg_state


@pytest.mark.parametrize(
    ("arch", "expected"),
    [
        (
            "vgg16",
            {"conv1_1": 0, "relu1_1": 1, "relu2_1": 6, "relu3_3": 15, "relu4_2": 20, "relu5_1": 25, "relu5_3": 29},
        ),
        (
            "vgg19",
            {"conv1_1": 0, "relu1_1": 1, "relu2_1": 6, "relu3_4": 17, "relu4_2": 22, "relu5_1": 29, "relu5_4": 35},
        ),
    ],
)
def test_layer_names_map_to_torchvision_indices(arch, expected):
    indices = layer_indices(arch)
    for name, index in expected.items():
        assert indices[name] == index
    features = getattr(torchvision.models, arch)().features
    for name, index in indices.items():
        kind = {"conv": torch.nn.Conv2d, "relu": torch.nn.ReLU, "pool": torch.nn.MaxPool2d}[name[:4]]
        assert isinstance(features[index], kind), name


@pytest.mark.parametrize("arch", ["vgg16", "vgg19"])
def test_features_equal_torchvision_vgg_with_the_same_weights(arch):
    state = random_vgg_state(arch)
    reference = getattr(torchvision.models, arch)().features.eval()
    reference.load_state_dict(strip_features_prefix(state))
    layers = ["conv1_1", "relu2_1", "relu4_2", "relu5_1"]
    backbone = VGGFeatures(arch, strip_features_prefix(state), layers)
    image = torch.randn(1, 3, 40, 48)
    activations = backbone(image)
    indices = layer_indices(arch)
    x = image
    for index, layer in enumerate(reference):
        # torchvision's ReLUs act in place, so clone to keep the conv output intact
        x = layer(x.clone())
        for name in layers:
            if indices[name] == index:
                assert torch.allclose(activations[name], x, atol=1e-5), name


def test_network_is_truncated_after_the_deepest_layer_used():
    backbone = VGGFeatures("vgg19", strip_features_prefix(random_vgg_state("vgg19")), ["relu1_1", "relu3_2"])
    assert len(backbone.features) == layer_indices("vgg19")["relu3_2"] + 1


def test_backbone_has_no_parameters_and_nothing_to_checkpoint():
    backbone = VGGFeatures("vgg19", strip_features_prefix(random_vgg_state("vgg19")), ["relu5_1"])
    assert list(backbone.parameters()) == []
    assert backbone.state_dict() == {}
    assert len(list(backbone.buffers())) == 2 * 13  # conv1_1 ... conv5_1


def test_average_pooling_replaces_max_pooling():
    backbone = VGGFeatures("vgg16", strip_features_prefix(random_vgg_state("vgg16")), ["relu3_1"], pooling="avg")
    pools = [layer for layer in backbone.features if "Pool" in type(layer).__name__]
    assert pools and all(isinstance(layer, torch.nn.AvgPool2d) for layer in pools)


def test_unknown_layer_name_is_a_usage_error():
    with pytest.raises(UsageError, match="relu3_4"):
        VGGFeatures("vgg16", strip_features_prefix(random_vgg_state("vgg16")), ["relu3_4"])
