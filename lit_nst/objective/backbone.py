"""The frozen VGG feature extractor: layer names, truncation, weights held as buffers.

The network's tensors are non-persistent buffers, never parameters, so the LightningModule's only
parameter is the image being optimised, and checkpoints never carry the VGG.
"""

from collections.abc import Iterable, Mapping
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torchvision.models.vgg import cfgs, make_layers

from lit_nst.errors import UsageError

Arch = Literal["vgg16", "vgg19"]
Pooling = Literal["max", "avg"]

VGG_CONFIGS = {"vgg16": cfgs["D"], "vgg19": cfgs["E"]}


def layer_indices(arch: Arch) -> dict[str, int]:
    """Map `convB_I` / `reluB_I` / `poolB` to its index in torchvision's `vgg.features`."""
    indices: dict[str, int] = {}
    index, block, conv_in_block = 0, 1, 1
    for entry in VGG_CONFIGS[arch]:
        if entry == "M":
            indices[f"pool{block}"] = index
            index, block, conv_in_block = index + 1, block + 1, 1
        else:
            indices[f"conv{block}_{conv_in_block}"] = index
            indices[f"relu{block}_{conv_in_block}"] = index + 1
            index, conv_in_block = index + 2, conv_in_block + 1
    return indices


def conv_shapes(arch: Arch) -> dict[int, tuple[int, int, int, int]]:
    """Index in `vgg.features` -> weight shape (out, in, 3, 3) of each conv."""
    shapes, index, channels = {}, 0, 3
    for entry in VGG_CONFIGS[arch]:
        if entry == "M":
            index += 1
        else:
            shapes[index] = (entry, channels, 3, 3)
            channels, index = entry, index + 2
    return shapes


def check_state_dict(state_dict: Mapping[str, Tensor], arch: Arch, origin: str) -> None:
    """Raise a UsageError unless every conv of `arch` is present (keys `N.weight`/`N.bias`) with its shape."""
    for index, shape in conv_shapes(arch).items():
        for key, expected in ((f"{index}.weight", shape), (f"{index}.bias", shape[:1])):
            if key not in state_dict:
                raise UsageError(
                    f"{origin} has no tensor 'features.{key}' that {arch} needs: "
                    f"is it a state dict of torchvision's {arch} (check --model.arch)?"
                )
            if tuple(state_dict[key].shape) != expected:
                raise UsageError(
                    f"{origin}: 'features.{key}' has shape {tuple(state_dict[key].shape)}, {arch} needs "
                    f"{expected}: check --model.arch"
                )


class VGGFeatures(nn.Module):
    """VGG convolutional layers up to the deepest requested layer, returning the requested activations."""

    def __init__(
        self, arch: Arch, state_dict: Mapping[str, Tensor], layers: Iterable[str], pooling: Pooling = "max"
    ) -> None:
        super().__init__()
        indices = layer_indices(arch)
        layers = list(dict.fromkeys(layers))
        unknown = [name for name in layers if name not in indices]
        if unknown:
            known = ", ".join(name for name in indices if not name.startswith("pool"))
            raise UsageError(f"unknown layer {unknown[0]!r} for {arch}; layer names are {known}")
        depth = max(indices[name] for name in layers)
        # Built on the meta device: the real tensors come from `state_dict`, so random init is wasted work.
        with torch.device("meta"):
            features = make_layers(VGG_CONFIGS[arch])[: depth + 1]
        for index, layer in enumerate(features):
            if isinstance(layer, nn.ReLU):
                layer.inplace = False  # the conv output before it may be a requested layer
            elif isinstance(layer, nn.MaxPool2d) and pooling == "avg":
                features[index] = nn.AvgPool2d(kernel_size=2, stride=2)
            elif isinstance(layer, nn.Conv2d):
                for name in ("weight", "bias"):
                    delattr(layer, name)
                    tensor = state_dict[f"{index}.{name}"].detach().to(torch.float32, copy=True)
                    layer.register_buffer(name, tensor, persistent=False)
        self.features = features
        self.taps = {indices[name]: name for name in layers}
        self.convolutions = [index for index, layer in enumerate(features) if isinstance(layer, nn.Conv2d)]
        self.strides, self.channels, self.reach = _geometry(features, self.taps)
        self._autocast_weights: tuple[tuple, dict[int, tuple[Tensor, Tensor]]] | None = None

    def forward(self, image: Tensor) -> dict[str, Tensor]:
        """(B, 3, H, W) preprocessed images -> {layer name: (B, C, h, w) activation}."""
        convolutions = self._convolution_weights(image.device)
        activations = {}
        for index, layer in enumerate(self.features):
            if convolutions is not None and index in convolutions:
                image = F.conv2d(image, *convolutions[index], stride=layer.stride, padding=layer.padding)
            else:
                image = layer(image)
            if index in self.taps:
                activations[self.taps[index]] = image
        return activations

    def _convolution_weights(self, device: torch.device) -> dict[int, tuple[Tensor, Tensor]] | None:
        """Under autocast, the convolutions' weights in its dtype, cast once and kept; None otherwise.

        Autocast caches its casts of parameters only, and these are buffers: without this copy every forward
        of every job would cast the whole VGG again.
        """
        if not torch.is_autocast_enabled(device.type):
            return None
        dtype = torch.get_autocast_dtype(device.type)
        first = self.features[self.convolutions[0]].weight
        key = (dtype, first.device, first.data_ptr())  # a move to another device makes new buffers
        if self._autocast_weights is None or self._autocast_weights[0] != key:
            layers = {index: self.features[index] for index in self.convolutions}
            copies = {index: (layer.weight.to(dtype), layer.bias.to(dtype)) for index, layer in layers.items()}
            self._autocast_weights = (key, copies)
        return self._autocast_weights[1]


def _geometry(features: nn.Sequential, taps: dict[int, str]) -> tuple[dict[str, int], dict[str, int], int]:
    """({layer: its stride in pixels}, {layer: its channels}, the deepest layer's reach): how far beyond its own
    stride-sized cell of pixels one position of the deepest layer sees, on either side (its receptive field is
    the cell plus twice the reach).

    relu5_1 of VGG19: stride 16, reach 70 (a 156-px receptive field).
    """
    strides, channels, stride, reach, width = {}, {}, 1, 0, 3
    for index, layer in enumerate(features):
        if isinstance(layer, nn.Conv2d):
            reach += stride * layer.padding[0]  # a 3x3 convolution padded by 1 sees one more position each side
            width = layer.out_channels
        elif isinstance(layer, nn.MaxPool2d | nn.AvgPool2d):
            stride *= 2  # a 2x2 pooling merges two cells: wider cells, no wider reach
        if index in taps:
            strides[taps[index]], channels[taps[index]] = stride, width
    return strides, channels, reach
