"""How an RGB image in [0, 1] is turned into the input a given set of VGG weights was trained on."""

from typing import Literal

import torch
from torch import Tensor, nn

PreprocessingName = Literal["caffe", "torchvision"]

# Caffe (original VGG release, Gatys et al.): BGR, 0-255, mean pixel subtracted, no std division.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
# torchvision's ImageNet weights: RGB in [0, 1], normalised by the ImageNet mean and std.
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)


class Preprocess(nn.Module):
    """(x[:, order] − mean) / std with constants held as buffers, so the step does no set-up work."""

    def __init__(self, name: PreprocessingName) -> None:
        super().__init__()
        if name == "caffe":
            # x·255 − mean_bgr, written as (x − mean_bgr/255) / (1/255).
            mean = torch.tensor(CAFFE_MEAN_BGR) / 255.0
            std = torch.full((3,), 1.0 / 255.0)
            self.to_bgr = True
        elif name == "torchvision":
            mean = torch.tensor(IMAGENET_MEAN_RGB)
            std = torch.tensor(IMAGENET_STD_RGB)
            self.to_bgr = False
        else:
            raise ValueError(f"unknown preprocessing {name!r}")
        self.name = name
        self.register_buffer("mean", mean.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("inverse_std", (1.0 / std).view(1, 3, 1, 1), persistent=False)

    def forward(self, image: Tensor) -> Tensor:
        """(B, 3, H, W) RGB in [0, 1] -> network input."""
        if self.to_bgr:
            image = image.flip(1)
        return (image - self.mean) * self.inverse_std
