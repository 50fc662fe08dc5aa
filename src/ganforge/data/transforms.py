"""Per-sample transforms shared by the file-reading datamodules (PIL image -> tensor)."""

from __future__ import annotations

import torch
from torchvision.transforms import v2

AUGMENTS = ("none", "hflip")


def check_augment(augment: str) -> None:
    """Rejects an unknown ``data.augment`` before any data is read."""
    if augment not in AUGMENTS:
        raise ValueError(f"data.augment must be one of {AUGMENTS}, got {augment!r}")


def sample_transform(
    image_size: int, channels: int, augment: str = "none", crop: int | None = None
) -> v2.Compose:
    """PIL image with ``channels`` bands -> float tensor (channels, size, size) in [-1, 1].

    ``crop`` centre-crops a square first (the DCGAN CelebA recipe crops 178 before resizing);
    without it the shorter side is resized to ``image_size`` and the centre kept.
    ``augment="hflip"`` flips half of the samples left-right.
    """
    check_augment(augment)
    steps: list = [v2.ToImage()]
    if crop:
        steps.append(v2.CenterCrop(crop))
    steps += [v2.Resize(image_size, antialias=True), v2.CenterCrop(image_size)]
    if augment == "hflip":
        steps.append(v2.RandomHorizontalFlip())
    steps += [
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize([0.5] * channels, [0.5] * channels),
    ]
    return v2.Compose(steps)
