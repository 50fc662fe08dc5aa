"""MNIST, Fashion-MNIST and CIFAR-10 through torchvision's dataset classes.

The files live where torchvision puts them under ``root`` (``MNIST/raw/``, ``FashionMNIST/raw/``,
``cifar-10-batches-py/``). They are downloaded when ``download`` is on and the download host
answers within a few seconds; otherwise a missing dataset is a :class:`GanforgeError` naming
the folder and files to put there.
"""

from __future__ import annotations

import logging
import socket
import threading
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlparse

import torch
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.datasets import CIFAR10, MNIST, FashionMNIST, VisionDataset
from torchvision.datasets.utils import extract_archive

from ganforge.data.base import ImageDataModule
from ganforge.data.transforms import sample_transform
from ganforge.errors import GanforgeError
from ganforge.pixels import resize_pixels

log = logging.getLogger(__name__)


def is_online(url: str, timeout: float = 3.0) -> bool:
    """Whether ``url``'s host accepts a TCP connection within ``timeout`` seconds.

    The attempt runs in a daemon thread so a resolver that hangs (common on offline
    machines) cannot hold the caller longer than ``timeout``.
    """
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    result: list[bool] = []

    def connect() -> None:
        try:
            socket.create_connection((parsed.hostname, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    worker = threading.Thread(target=connect, daemon=True)
    worker.start()
    worker.join(timeout)
    return bool(result and result[0])


class CIFAR10Files(CIFAR10):
    """torchvision's CIFAR-10 reader without MD5 checks of the extracted batch files.

    torchvision verifies each pickle's MD5, which rejects re-packed copies (and any file a
    test writes); the downloaded archive itself is still verified.
    """

    train_list: ClassVar[list[list[str | None]]] = [[n, None] for n, _ in CIFAR10.train_list]
    test_list: ClassVar[list[list[str | None]]] = [[n, None] for n, _ in CIFAR10.test_list]
    meta: ClassVar[dict[str, str | None]] = {**CIFAR10.meta, "md5": None}


class TorchvisionDataModule(ImageDataModule):
    """A small labelled dataset read by a torchvision class from ``root``.

    ``in_memory=True`` (default) keeps the uint8 pixels as one tensor, resized once to
    ``image_size``; otherwise the torchvision dataset decodes and transforms per sample.
    Only the training split is used; ``num_val`` images of it are held out.
    """

    dataset_class: ClassVar[type[VisionDataset]]
    #: folder under ``root`` and the files torchvision expects there
    folder: ClassVar[str]
    files: ClassVar[tuple[str, ...]]
    download_url: ClassVar[str]

    def __init__(self, root: str = "data", download: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.root = Path(root)
        self.download = download

    def missing_files(self) -> list[str]:
        """The expected files present in ``<root>/<folder>`` neither as is nor gzipped."""
        folder = self.root / self.folder
        return [
            f for f in self.files if not (folder / f).exists() and not (folder / f"{f}.gz").exists()
        ]

    def _prepare(self) -> None:
        """Make the files torchvision reads exist: unpack ``.gz`` copies, or download."""
        folder = self.root / self.folder
        for name in self.files:
            packed = folder / f"{name}.gz"
            if not (folder / name).exists() and packed.exists():
                extract_archive(str(packed), str(folder))
        missing = self.missing_files()
        if not missing:
            return
        if self.download and is_online(self.download_url):
            log.info("%s: downloading to %s", self.name, self.root)
            self.dataset_class(str(self.root), train=True, download=True)
            return
        why = "downloads are off (data.download=false)" if not self.download else "offline"
        raise GanforgeError(
            f"{self.name}: dataset not found and {why}. Put these files (or .gz copies) in "
            f"{folder}/: {', '.join(self.files)} (missing: {', '.join(missing)}), or set "
            "data.root to the folder that holds them"
        )

    def open(self, transform=None) -> VisionDataset:
        """The torchvision training set, downloading or unpacking it first if needed."""
        self._prepare()
        return self.dataset_class(str(self.root), train=True, transform=transform)

    def load_tensors(self) -> tuple[Tensor, Tensor]:
        dataset = self.open()
        pixels = torch.as_tensor(dataset.data)
        pixels = pixels.unsqueeze(1) if pixels.dim() == 3 else pixels.permute(0, 3, 1, 2)
        x = resize_pixels(pixels.contiguous(), self.image_size)
        return x, torch.as_tensor(dataset.targets, dtype=torch.long)

    def load_dataset(self) -> Dataset:
        return self.open(sample_transform(self.image_size, self.channels, self.augment))


class MNISTDataModule(TorchvisionDataModule):
    """The 60,000 MNIST training digits (``<root>/MNIST/raw/``)."""

    name = "mnist"
    dataset_class = MNIST
    folder = "MNIST/raw"
    files = (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    )
    download_url = MNIST.mirrors[0]


class FashionMNISTDataModule(MNISTDataModule):
    """The 60,000 Fashion-MNIST training images (``<root>/FashionMNIST/raw/``)."""

    name = "fashion_mnist"
    dataset_class = FashionMNIST
    folder = "FashionMNIST/raw"
    download_url = FashionMNIST.mirrors[0]


class CIFAR10DataModule(TorchvisionDataModule):
    """The 50,000 CIFAR-10 training images (``<root>/cifar-10-batches-py/``)."""

    name = "cifar10"
    dataset_class = CIFAR10Files
    folder = CIFAR10.base_folder
    files = (
        *(f"data_batch_{i}" for i in range(1, 6)),
        "test_batch",
        "batches.meta",
    )
    download_url = CIFAR10.url
