"""Colour controls of Gatys et al. (2017), "Controlling Perceptual Factors in Neural Style Transfer".

Images are (..., 3, H, W) RGB in [0, 1]; nothing here knows of networks or files.
"""

from typing import Literal

import torch
from torch import Tensor

Color = Literal["none", "luminance", "match"]

# NTSC YIQ: Y is luminance, I and Q carry the chroma.
RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.5959, -0.2746, -0.3213], [0.2115, -0.5227, 0.3112]])


def rgb_to_yiq(image: Tensor) -> Tensor:
    return torch.einsum("ij,...jhw->...ihw", RGB_TO_YIQ.to(image), image)


def yiq_to_rgb(image: Tensor) -> Tensor:
    return torch.einsum("ij,...jhw->...ihw", torch.linalg.inv(RGB_TO_YIQ).to(image), image)


def luminance_as_rgb(image: Tensor) -> Tensor:
    """The luminance Y as a grey RGB image (R = G = B = Y), what the network sees in luminance mode."""
    return rgb_to_yiq(image)[..., :1, :, :].expand_as(image).contiguous()


def match_luminance(style: Tensor, content: Tensor) -> Tensor:
    """Shift and scale the style's luminance to the content's mean and spread (the paper's histogram step)."""
    style_y, content_y = rgb_to_yiq(style)[..., :1, :, :], rgb_to_yiq(content)[..., :1, :, :]
    matched = (style_y - style_y.mean()) / style_y.std().clamp_min(1e-6) * content_y.std() + content_y.mean()
    return matched.expand_as(style).contiguous()


def with_chroma(luminance: Tensor, chroma_source: Tensor) -> Tensor:
    """RGB image with the luminance of `luminance` and the chroma (I, Q) of `chroma_source`."""
    yiq = torch.cat([rgb_to_yiq(luminance)[..., :1, :, :], rgb_to_yiq(chroma_source)[..., 1:, :, :]], dim=-3)
    return yiq_to_rgb(yiq)


def match_color(style: Tensor, content: Tensor) -> Tensor:
    """The style with its RGB mean and covariance made the content's: x' = C_c^½ C_s^-½ (x − μ_s) + μ_c."""
    style_pixels, content_pixels = style.reshape(3, -1).double(), content.reshape(3, -1).double()
    style_mean, content_mean = style_pixels.mean(1, keepdim=True), content_pixels.mean(1, keepdim=True)
    transform = _sqrtm(_covariance(content_pixels)) @ torch.linalg.inv(_sqrtm(_covariance(style_pixels)))
    matched = transform @ (style_pixels - style_mean) + content_mean
    return matched.reshape(style.shape).to(style.dtype)


def _covariance(pixels: Tensor) -> Tensor:
    centred = pixels - pixels.mean(1, keepdim=True)
    # A little ridge keeps flat (e.g. grey) images invertible.
    return centred @ centred.T / pixels.shape[1] + 1e-5 * torch.eye(3, dtype=pixels.dtype)


def _sqrtm(matrix: Tensor) -> Tensor:
    values, vectors = torch.linalg.eigh(matrix)
    return vectors @ torch.diag(values.clamp_min(0).sqrt()) @ vectors.T


def style_as_seen(style: Tensor, content: Tensor, color: str) -> Tensor:
    """The style image as the network sees it under the `color` control (`none`, `luminance` or `match`)."""
    if color == "match":
        return match_color(style, content)
    if color == "luminance":
        return match_luminance(style, content)
    return style


def content_as_seen(content: Tensor, color: str) -> Tensor:
    """The content photo as the network sees it under `color`: its luminance alone in `luminance` mode."""
    return luminance_as_rgb(content) if color == "luminance" else content
