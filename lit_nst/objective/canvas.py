"""Jobs of different shapes in one tensor: each job's image sits in the top-left corner of its row.

The target parameter is one (jobs, 3, H, W) canvas, H and W the largest of the jobs' heights and
widths at the output size. A job reads and writes only its (h, w) corner; the padding never reaches
the network, so its gradient is zero and no optimiser ever moves it (Adam's and L-BFGS's steps are
built from gradients). The canvas keeps its size through a coarse-to-fine schedule, the smaller
scales using smaller corners: a parameter that changed shape would break DDP's gradient hooks.
"""

import torch
from torch import Tensor


def pad_stack(images: list[Tensor], shape: tuple[int, int] | None = None) -> Tensor:
    """(C, h_i, w_i) images -> one (N, C, H, W) tensor, each image top-left, zeros around it.

    (H, W) is `shape`, or the largest height and width of the images.
    """
    channels = images[0].shape[0]
    height, width = shape or (max(image.shape[-2] for image in images), max(image.shape[-1] for image in images))
    canvas = images[0].new_zeros(len(images), channels, height, width)
    for row, image in enumerate(images):
        canvas[row, :, : image.shape[-2], : image.shape[-1]] = image
    return canvas


def crop(row: Tensor, shape: tuple[int, int]) -> Tensor:
    """The job's (…, h, w) corner of its canvas row, as a view."""
    height, width = shape
    return row[..., :height, :width]


def crops(canvas: Tensor, shapes: list[tuple[int, int]]) -> list[Tensor]:
    """Every job's image out of the canvas, as views."""
    return [crop(canvas[row], shape) for row, shape in enumerate(shapes)]


def image_shape(image: Tensor) -> tuple[int, int]:
    return int(image.shape[-2]), int(image.shape[-1])


def resized(canvas: Tensor, shapes: list[tuple[int, int]], new_shapes: list[tuple[int, int]]) -> Tensor:
    """Every job's image resized (bicubic) from `shapes` to `new_shapes`, on a new canvas of the same size."""
    images = [
        torch.nn.functional.interpolate(image[None], size=new, mode="bicubic", align_corners=False)[0]
        for image, new in zip(crops(canvas, shapes), new_shapes, strict=True)
    ]
    return pad_stack(images, image_shape(canvas))
