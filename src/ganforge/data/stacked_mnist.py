"""Stacked MNIST: three random digits as the R, G and B channels, so 10^3 = 1,000 modes."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import Tensor

from ganforge.data.base import ImageDataModule
from ganforge.data.mnist5k import load_mnist5k
from ganforge.data.torchvision_sets import MNISTDataModule
from ganforge.errors import GanforgeError
from ganforge.pixels import to_uint8

log = logging.getLogger(__name__)

SOURCES = ("auto", "mnist5k", "mnist")


class StackedMNISTDataModule(ImageDataModule):
    """``num_samples`` RGB images, each channel a digit drawn independently (seeded).

    The label is ``100 * red + 10 * green + blue`` digit, one of 1,000 classes. Digits come
    from full MNIST under ``root`` (``source=mnist``, or ``auto`` when its files are there)
    or from the embedded mnist5k digits.
    """

    name = "stacked_mnist"

    def __init__(
        self,
        root: str = "data",
        source: str = "auto",
        num_samples: int = 50_000,
        channels: int = 3,
        num_classes: int | None = 1000,
        **kwargs,
    ):
        super().__init__(channels=channels, num_classes=num_classes, **kwargs)
        if source not in SOURCES:
            raise GanforgeError(
                f"stacked_mnist: data.source must be one of {SOURCES}, got {source!r}"
            )
        if channels != 3 or num_classes != 1000:
            raise GanforgeError(
                "stacked_mnist: images have 3 channels and 1000 classes; set data.channels=3 "
                f"and data.num_classes=1000 (got {channels} and {num_classes})"
            )
        self.root = Path(root)
        self.source = source
        self.num_samples = num_samples
        #: the digits stacked, once loaded (reports name it: the pool's size changes results)
        self.digit_pool: str | None = None

    def digits(self) -> tuple[Tensor, Tensor]:
        """Single digits as uint8 (N, 1, S, S) and their labels, from the chosen source."""
        full = MNISTDataModule(root=str(self.root), download=False, image_size=self.image_size)
        if self.source == "mnist" or (self.source == "auto" and not full.missing_files()):
            x, y = full.load_tensors()
            self.digit_pool = f"full MNIST ({len(x):,} digits)"
        else:
            x, y = load_mnist5k(self.image_size)
            x, self.digit_pool = to_uint8(x), f"embedded mnist5k ({len(x):,} digits)"
        log.info("stacked_mnist: stacking %s", self.digit_pool)
        return x, y

    def load_tensors(self) -> tuple[Tensor, Tensor]:
        x, y = self.digits()
        g = torch.Generator().manual_seed(self.seed)
        picks = torch.randint(len(x), (self.num_samples, 3), generator=g)
        images = x[picks].squeeze(2)  # (N, 3, 1, S, S) -> (N, 3, S, S)
        labels = (y[picks] * torch.tensor([100, 10, 1])).sum(1)
        return images, labels
