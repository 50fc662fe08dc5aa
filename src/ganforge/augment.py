"""Differentiable augmentation of discriminator inputs: DiffAugment (Zhao et al. 2020).

The same random transformations are applied to real and generated batches before D sees them,
and they are differentiable, so G is trained through them. This lets D train on small datasets
without memorising them, while G still learns the un-augmented distribution. Configure it as

.. code-block:: yaml

    model:
      d_augment:
        _target_: ganforge.augment.DiffAugment
        policy: [color, translation, cutout]
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganforge.errors import GanforgeError

POLICIES = ("color", "translation", "cutout")


def _uniform(x: Tensor, low: float, high: float) -> Tensor:
    """One value per sample, shaped to broadcast over (C, H, W)."""
    return torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).uniform_(low, high)


def rand_color(x: Tensor) -> Tensor:
    """Random brightness (+-0.5), saturation (x0..2) and contrast (x0.5..1.5) per sample."""
    x = x + _uniform(x, -0.5, 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * _uniform(x, 0.0, 2.0) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * _uniform(x, 0.5, 1.5) + mean


def rand_translation(x: Tensor, ratio: float = 0.125) -> Tensor:
    """Shift each image by a random whole number of pixels, up to ``ratio`` of its size per
    axis, filling the uncovered border with zeros."""
    b, _, h, w = x.shape
    sx, sy = int(w * ratio + 0.5), int(h * ratio + 0.5)
    dx = torch.randint(-sx, sx + 1, (b,), device=x.device).to(x.dtype)
    dy = torch.randint(-sy, sy + 1, (b,), device=x.device).to(x.dtype)
    # grid_sample's coordinates span [-1, 1], so one pixel is 2/size; sampling every output
    # pixel at p - d moves the content by +d, landing exactly on pixel centres.
    theta = torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, 0, 2], theta[:, 1, 2] = -2.0 * dx / w, -2.0 * dy / h
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def rand_cutout(x: Tensor, ratio: float = 0.5) -> Tensor:
    """Zero one square of side ``ratio`` times the image size at a random centre per image
    (the square is clipped at the border)."""
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = torch.randint(0, h + (1 - ch % 2), (b, 1, 1), device=x.device) - ch // 2
    left = torch.randint(0, w + (1 - cw % 2), (b, 1, 1), device=x.device) - cw // 2
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (rows >= top) & (rows < top + ch) & (cols >= left) & (cols < left + cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


class DiffAugment(nn.Module):
    """Apply the ``policy`` transformations in order, with fresh randomness per sample.

    Args:
        policy: any of ``color``, ``translation``, ``cutout`` (the paper's full policy).
        translation_ratio: largest shift as a fraction of the image size (paper: 1/8).
        cutout_ratio: side of the cut-out square as a fraction of the image size (paper: 1/2).
    """

    def __init__(
        self,
        policy: Sequence[str] = POLICIES,
        translation_ratio: float = 0.125,
        cutout_ratio: float = 0.5,
    ):
        super().__init__()
        unknown = [p for p in policy if p not in POLICIES]
        if unknown:
            raise GanforgeError(
                f"model.d_augment.policy has unknown transformations {unknown}; "
                f"choose from {list(POLICIES)}"
            )
        for name, value in (
            ("translation_ratio", translation_ratio),
            ("cutout_ratio", cutout_ratio),
        ):
            if not 0.0 <= value <= 1.0:
                raise GanforgeError(f"model.d_augment.{name} must be in [0, 1], got {value}")
        self.policy = tuple(policy)
        self.translation_ratio = translation_ratio
        self.cutout_ratio = cutout_ratio

    def forward(self, x: Tensor) -> Tensor:
        for name in self.policy:
            if name == "color":
                x = rand_color(x)
            elif name == "translation":
                x = rand_translation(x, self.translation_ratio)
            else:
                x = rand_cutout(x, self.cutout_ratio)
        return x

    def extra_repr(self) -> str:
        return f"policy={list(self.policy)}"
