"""MNIST / Fashion-MNIST / CIFAR-10 / stacked MNIST read from files written in the real formats."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from ganforge.data import (
    CIFAR10DataModule,
    FashionMNISTDataModule,
    MNISTDataModule,
    StackedMNISTDataModule,
)
from ganforge.data import torchvision_sets as tv
from ganforge.errors import GanforgeError


def write_idx_gz(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as a gzipped IDX file (magic 0x08 = ubyte, then big-endian dims)."""
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def make_mnist(root: Path, folder: str, n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """A tiny MNIST-format dataset in torchvision's ``<folder>/raw`` layout (only .gz files)."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    for split in ("train", "t10k"):
        write_idx_gz(raw / f"{split}-images-idx3-ubyte.gz", images)
        write_idx_gz(raw / f"{split}-labels-idx1-ubyte.gz", labels)
    return images, labels


def make_cifar(root: Path, per_batch: int = 8) -> tuple[np.ndarray, list[int]]:
    """CIFAR-10 python pickles (5 train batches, test batch, meta) in cifar-10-batches-py/."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    data, labels = [], []
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        batch = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        batch_labels = [int(v) for v in rng.integers(0, 10, per_batch)]
        with open(folder / name, "wb") as f:
            pickle.dump({"data": batch, "labels": batch_labels}, f)
        if name != "test_batch":
            data.append(batch)
            labels += batch_labels
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, f)
    return np.concatenate(data), labels


@pytest.mark.parametrize(
    ("cls", "folder"), [(MNISTDataModule, "MNIST"), (FashionMNISTDataModule, "FashionMNIST")]
)
def test_mnist_family_reads_gzipped_idx_in_both_paths(tmp_path, cls, folder):
    images, labels = make_mnist(tmp_path, folder)
    fast = cls(root=str(tmp_path), download=False, image_size=28, batch_size=8)
    fast.setup()
    x, y = fast.real_images("train")
    expected = torch.from_numpy(images).float().div(127.5).sub(1).unsqueeze(1)
    assert x.shape == (40, 1, 28, 28)
    torch.testing.assert_close(x, expected[_order(expected, x)])
    assert y.tolist() == labels[_order(expected, x)].tolist()

    slow = cls(root=str(tmp_path), download=False, image_size=32, in_memory=False, batch_size=8)
    slow.setup()
    loader = slow.train_dataloader()
    assert isinstance(loader, torch.utils.data.DataLoader)
    xb, yb = next(iter(loader))
    assert xb.shape == (8, 1, 32, 32) and xb.dtype == torch.float32
    assert -1 <= xb.min() < xb.max() <= 1
    assert yb.dtype == torch.long and set(yb.tolist()) <= set(range(10))


def _order(reference: torch.Tensor, shuffled: torch.Tensor) -> torch.Tensor:
    """Indices of ``reference`` rows matching each row of ``shuffled`` (the split permutes)."""
    flat_ref, flat = reference.flatten(1), shuffled.flatten(1)
    return torch.cdist(flat, flat_ref).argmin(1)


def test_in_memory_mnist_resizes_once_and_batches_floats(tmp_path):
    make_mnist(tmp_path, "MNIST")
    dm = MNISTDataModule(root=str(tmp_path), download=False, image_size=32, batch_size=4)
    dm.setup()
    assert dm.train_set[0].dtype == torch.uint8 and dm.train_set[0].shape[1:] == (1, 32, 32)
    xb, yb = next(iter(dm.train_dataloader()))
    assert xb.shape == (4, 1, 32, 32) and xb.dtype == torch.float32
    assert yb.shape == (4,)


def test_cifar10_reads_pickles_without_md5(tmp_path):
    data, labels = make_cifar(tmp_path)
    dm = CIFAR10DataModule(root=str(tmp_path), download=False, channels=3, batch_size=4)
    dm.setup()
    x, y = dm.real_images("train")
    assert x.shape == (40, 3, 32, 32)
    expected = torch.from_numpy(data).view(-1, 3, 32, 32).float().div(127.5).sub(1)
    order = _order(expected, x)
    torch.testing.assert_close(x, expected[order])
    assert y.tolist() == [labels[i] for i in order.tolist()]

    slow = CIFAR10DataModule(
        root=str(tmp_path), download=False, channels=3, batch_size=4, in_memory=False
    )
    slow.setup()
    xb, _ = next(iter(slow.train_dataloader()))
    assert xb.shape == (4, 3, 32, 32)


def test_missing_dataset_offline_names_folder_and_files(tmp_path, monkeypatch):
    monkeypatch.setattr(tv, "is_online", lambda url, timeout=3.0: False)
    dm = MNISTDataModule(root=str(tmp_path), download=True)
    with pytest.raises(GanforgeError) as err:
        dm.setup()
    message = str(err.value)
    assert "offline" in message
    assert str(tmp_path / "MNIST" / "raw") in message
    assert "train-images-idx3-ubyte" in message and "t10k-labels-idx1-ubyte" in message

    cifar = CIFAR10DataModule(root=str(tmp_path), download=False, channels=3)
    with pytest.raises(GanforgeError, match=r"cifar-10-batches-py.*data_batch_1"):
        cifar.setup()


def test_is_online_gives_up_quickly_on_unreachable_host():
    # a reserved TEST-NET address never answers
    assert tv.is_online("http://192.0.2.1/", timeout=0.5) is False


def test_stacked_mnist_from_full_mnist_when_present(tmp_path):
    images, labels = make_mnist(tmp_path, "MNIST")
    dm = StackedMNISTDataModule(root=str(tmp_path), num_samples=64, image_size=28)
    dm.setup()
    x, y = dm.real_images("train")
    assert x.shape == (64, 3, 28, 28) and y.max() < 1000
    assert dm.digit_pool == f"full MNIST ({len(images)} digits)"
    digits = torch.from_numpy(images).float().div(127.5).sub(1)
    for img, label in zip(x[:8], y[:8], strict=True):
        for channel, place in zip(img, (100, 10, 1), strict=True):
            match = torch.cdist(channel.view(1, -1), digits.view(len(digits), -1)).argmin()
            assert labels[match] == (label.item() // place) % 10


def test_stacked_mnist_defaults_to_mnist5k_and_spreads_over_many_modes(tmp_path):
    dm = StackedMNISTDataModule(root=str(tmp_path), num_samples=3000, num_val=0)
    dm.setup()
    x, y = dm.real_images("train")
    assert x.shape == (3000, 3, 32, 32)
    assert dm.digit_pool == "embedded mnist5k (5,000 digits)"
    # 3000 draws from 1000 equally likely modes cover about 95% of them
    assert len(y.unique()) > 900
