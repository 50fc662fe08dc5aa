"""Image conversions and grid layouts, in one place: the package holds images as float in
[-1, 1] (what generators output) or as uint8 pixels (compact storage, feature extractors)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.utils import make_grid


def to_float(x: Tensor) -> Tensor:
    """Images as float in [-1, 1]: uint8 pixels are scaled, float tensors pass through.

    Image datasets are held as uint8 (a quarter of the memory of float32) and converted one
    batch at a time on the device.
    """
    return x.float().div_(127.5).sub_(1.0) if x.dtype == torch.uint8 else x


def to_uint8(images: Tensor) -> Tensor:
    """Images in [-1, 1] as uint8 in [0, 255], rounded (not truncated), out-of-range values
    clamped."""
    return images.add(1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)


def resize_pixels(x: Tensor, image_size: int) -> Tensor:
    """Resize uint8 images (N, C, H, W) with antialiased bilinear filtering, staying uint8."""
    if x.shape[-2:] == (image_size, image_size):
        return x
    out = F.interpolate(
        x.float(), size=image_size, mode="bilinear", antialias=True, align_corners=False
    )
    return out.round_().clamp_(0, 255).to(torch.uint8)


def grid_of(images: Tensor, nrow: int) -> Tensor:
    """A (C, H, W) grid in [0, 1] from images in [-1, 1]."""
    return make_grid(
        images.float().cpu(), nrow=nrow, normalize=True, value_range=(-1, 1), padding=2
    )


def row_length(n: int, num_classes: int) -> int:
    """Images per row of a grid of ``n``: one row per class for a conditional model
    (``ceil(n / num_classes)`` each), about ``sqrt(n)`` otherwise."""
    if num_classes:
        return max(math.ceil(n / num_classes), 1)
    return max(math.isqrt(n), 1)


def class_rows(n: int, num_classes: int) -> Tensor:
    """Labels for a grid with one row per class holding :func:`row_length` images each (``n``
    rounded up to whole rows): ``0 0 0 1 1 1 2 2 2 ...``."""
    return torch.arange(num_classes).repeat_interleave(row_length(n, num_classes))
