"""CelebA read from torchvision's on-disk layout by ganforge's own code (no MD5 checks).

Layout under ``root``: ``celeba/img_align_celeba/*.jpg``, ``celeba/list_eval_partition.txt``
and, for attribute labels, ``celeba/list_attr_celeba.txt``. torchvision's own ``CelebA`` class
checks the MD5 of the text files and so rejects re-packed copies; this reader only needs the
files to exist.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset

from ganforge.data.base import ImageDataModule
from ganforge.data.files import ImageFiles, decode_all
from ganforge.data.transforms import sample_transform
from ganforge.errors import GanforgeError

log = logging.getLogger(__name__)

SPLITS = {"train": "0", "valid": "1", "test": "2"}


def read_partition(path: Path) -> dict[str, str]:
    """``list_eval_partition.txt``: file name -> split code ("0" train, "1" valid, "2" test)."""
    rows = (line.split() for line in path.read_text().splitlines() if line.strip())
    return {name: code for name, code in rows}


def read_attributes(path: Path) -> tuple[list[str], dict[str, list[int]]]:
    """``list_attr_celeba.txt``: attribute names and, per image, its values as 0/1."""
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    names = lines[1].split()
    table = {}
    for line in lines[2:]:
        name, *values = line.split()
        table[name] = [int(v == "1") for v in values]
    return names, table


class CelebADataModule(ImageDataModule):
    """CelebA faces, centre-cropped to ``crop`` then resized to ``image_size`` (DCGAN recipe).

    Args:
        root: the folder holding ``celeba/``.
        split: ``train``, ``valid``, ``test`` or ``all`` (from the partition file).
        attributes: attribute names used as labels: with k names the label is the k-bit
            code of their values, so ``num_classes`` must be 2**k (e.g. ``[Smiling]`` -> 2).
        crop: side of the centre square kept before resizing (null: none).
    """

    name = "celeba"

    def __init__(
        self,
        root: str = "data",
        split: str = "train",
        attributes: Sequence[str] = (),
        crop: int | None = 178,
        image_size: int = 64,
        channels: int = 3,
        in_memory: bool = False,
        num_workers: int = 4,
        **kwargs,
    ):
        super().__init__(
            image_size=image_size,
            channels=channels,
            in_memory=in_memory,
            num_workers=num_workers,
            **kwargs,
        )
        if split not in (*SPLITS, "all"):
            raise GanforgeError(
                f"celeba: data.split must be one of {[*SPLITS, 'all']}, got {split!r}"
            )
        self.folder = Path(root) / "celeba"
        self.split = split
        self.attributes = list(attributes)
        self.crop = crop

    def _require(self, *names: str) -> None:
        missing = [n for n in names if not (self.folder / n).exists()]
        if missing:
            raise GanforgeError(
                f"celeba: {', '.join(missing)} not found in {self.folder}. Expected torchvision's "
                "layout there: img_align_celeba/ (the aligned JPEGs), list_eval_partition.txt"
                + (", list_attr_celeba.txt" if self.attributes else "")
                + "; set data.root to the folder that holds celeba/"
            )

    def _labels(self, names: list[str]) -> Tensor:
        k = len(self.attributes)
        expected = 2**k if k else None
        if self.num_classes != expected:
            raise GanforgeError(
                f"celeba: data.attributes={self.attributes} give {expected} classes; set "
                f"data.num_classes={'null' if expected is None else expected} "
                f"(got {self.num_classes})"
            )
        if not k:
            return torch.zeros(len(names), dtype=torch.long)
        self._require("list_attr_celeba.txt")
        columns, table = read_attributes(self.folder / "list_attr_celeba.txt")
        unknown = [a for a in self.attributes if a not in columns]
        if unknown:
            raise GanforgeError(f"celeba: unknown attribute(s) {unknown}; known: {columns}")
        picks = [columns.index(a) for a in self.attributes]
        bits = torch.tensor([[table[n][c] for c in picks] for n in names], dtype=torch.long)
        return (bits * (2 ** torch.arange(k - 1, -1, -1))).sum(1)

    def image_files(self, augment: str = "none") -> ImageFiles:
        """The split's images (those present on disk) with their labels and transform."""
        self._require("img_align_celeba", "list_eval_partition.txt")
        partition = read_partition(self.folder / "list_eval_partition.txt")
        wanted = sorted(
            n for n, c in partition.items() if self.split == "all" or c == SPLITS[self.split]
        )
        images = self.folder / "img_align_celeba"
        names = [n for n in wanted if (images / n).is_file()]
        if len(names) < len(wanted):
            log.warning(
                "celeba: %d of the %d %s images listed in list_eval_partition.txt are missing "
                "from %s; using the %d present",
                len(wanted) - len(names),
                len(wanted),
                self.split,
                images,
                len(names),
            )
        if not names:
            raise GanforgeError(f"celeba: none of the {self.split} images are in {images}")
        log.info("celeba: %d %s images", len(names), self.split)
        transform = sample_transform(self.image_size, self.channels, augment, self.crop)
        return ImageFiles(
            [images / n for n in names], self._labels(names), transform, self.channels
        )

    def cache_spec(self) -> dict:
        return {
            **super().cache_spec(),
            "root": str(self.folder.resolve()),
            "attributes": self.attributes,
        }

    def cache_source(self) -> ImageFiles:
        """The per-file decoder the decoded cache is built from (no augmentation)."""
        return self.image_files()

    def load_tensors(self) -> tuple[Tensor, Tensor]:
        return decode_all(self.image_files(), self.num_workers)

    def load_dataset(self) -> Dataset:
        return self.image_files(self.augment)
