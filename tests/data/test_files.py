"""CelebA (torchvision layout, own reader) and image folders, from files the tests write."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.data import CelebADataModule, ImageFolderDataModule
from ganforge.errors import GanforgeError

ATTRS = ["Male", "Smiling", "Young"]


def save_jpeg(path: Path, size: tuple[int, int], color: tuple[int, int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, quality=95)


def make_celeba(root: Path) -> dict[str, list[int]]:
    """Six 178x218 aligned faces: 4 train, 1 valid, 1 test, with a partition and attribute file.

    Each image is a flat colour whose red value encodes its index, so tests can tell them apart.
    """
    folder = root / "celeba"
    names = [f"{i:06d}.jpg" for i in range(1, 7)]
    parts = ["0", "0", "0", "0", "1", "2"]
    attrs = {n: [(i >> b) & 1 for b in range(3)] for i, n in enumerate(names)}
    for i, name in enumerate(names):
        save_jpeg(folder / "img_align_celeba" / name, (178, 218), (40 * i, 100, 200))
    lines = [f"{n} {p}" for n, p in zip(names, parts, strict=True)]
    (folder / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    rows = [f"{n} " + " ".join("1" if v else "-1" for v in attrs[n]) for n in names]
    (folder / "list_attr_celeba.txt").write_text(
        f"{len(names)}\n{' '.join(ATTRS)}\n" + "\n".join(rows) + "\n"
    )
    return attrs


def test_celeba_reads_partition_and_crops_to_64(tmp_path):
    make_celeba(tmp_path)
    dm = CelebADataModule(root=str(tmp_path), batch_size=2, num_workers=0)
    dm.setup()
    x, y = dm.real_images("train")
    assert x.shape == (4, 3, 64, 64)
    assert (y == 0).all() and dm.num_classes is None
    reds = sorted(round((v.item() + 1) * 127.5 / 40) for v in x[:, 0].mean((1, 2)))
    assert reds == [0, 1, 2, 3]  # exactly the four train-partition images
    xb, _ = next(iter(dm.train_dataloader()))
    assert xb.shape == (2, 3, 64, 64)


def test_celeba_attributes_become_class_labels(tmp_path):
    attrs = make_celeba(tmp_path)
    dm = CelebADataModule(
        root=str(tmp_path), split="all", attributes=["Smiling", "Male"], num_classes=4
    )
    dm.setup()
    dataset = dm.train_dataset.dataset
    for path, label in zip(dataset.files, dataset.labels.tolist(), strict=True):
        male, smiling = attrs[path.name][0], attrs[path.name][1]
        assert label == 2 * smiling + male


def test_celeba_errors_name_missing_files_and_wrong_class_count(tmp_path):
    with pytest.raises(GanforgeError, match=r"list_eval_partition\.txt"):
        CelebADataModule(root=str(tmp_path)).setup()
    make_celeba(tmp_path)
    with pytest.raises(GanforgeError, match="num_classes=2"):
        CelebADataModule(root=str(tmp_path), attributes=["Smiling"]).setup()


def make_folder(root: Path) -> list[Path]:
    """Five good images in nested folders, one truncated JPEG and one text file."""
    good = []
    for i, sub in enumerate(["cats", "cats", "dogs", "dogs/puppies", "dogs"]):
        path = root / sub / f"img{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((40, 30, 3), 50 * i, dtype=np.uint8)).save(path)
        good.append(path)
    full = root / "tmp.jpg"
    save_jpeg(full, (64, 64), (10, 20, 30))
    (root / "cats" / "broken.jpg").write_bytes(full.read_bytes()[:300])
    full.unlink()
    (root / "dogs" / "notes.txt").write_text("not an image")
    return good


@pytest.mark.parametrize("in_memory", [True, False])
def test_folder_skips_truncated_files_and_reports_them(tmp_path, caplog, in_memory):
    make_folder(tmp_path)
    dm = ImageFolderDataModule(
        path=str(tmp_path), image_size=16, batch_size=2, num_workers=0, in_memory=in_memory
    )
    with caplog.at_level(logging.INFO):
        dm.setup()
        loader = dm.train_dataloader()
        batches = list(loader)  # a whole epoch, over the broken file
    assert "found 6 images (1 other files ignored)" in caplog.text
    assert "broken.jpg" in caplog.text
    seen = torch.cat([x for x, _ in batches])
    assert seen.shape[1:] == (3, 16, 16)
    assert len(batches) == (5 if in_memory else 6) // 2
    if in_memory:
        assert "skipped 1 unreadable image file(s) of 6" in caplog.text
        assert len(dm.train_set[0]) == 5


def test_folder_labels_from_subfolders(tmp_path):
    make_folder(tmp_path)
    (tmp_path / "cats" / "broken.jpg").unlink()
    dm = ImageFolderDataModule(
        path=str(tmp_path),
        labels_from_subfolders=True,
        num_classes=2,
        in_memory=True,
        num_workers=0,
    )
    dm.setup()
    _, y = dm.real_images("train")
    assert sorted(y.tolist()) == [0, 0, 1, 1, 1]
    with pytest.raises(GanforgeError, match="num_classes=2"):
        ImageFolderDataModule(path=str(tmp_path), labels_from_subfolders=True).setup()


def test_folder_errors_on_missing_or_empty_path(tmp_path):
    with pytest.raises(GanforgeError, match="not a directory"):
        ImageFolderDataModule(path=str(tmp_path / "nope")).setup()
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(GanforgeError, match="no image files"):
        ImageFolderDataModule(path=str(tmp_path)).setup()
