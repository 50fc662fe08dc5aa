"""Image files on disk as a dataset that skips unreadable files instead of ending the epoch."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ganforge.errors import GanforgeError
from ganforge.pixels import to_uint8

log = logging.getLogger(__name__)

#: what PIL raises for truncated, corrupt or non-image files
DECODE_ERRORS = (OSError, SyntaxError, ValueError, UnidentifiedImageError)


class ImageFiles(Dataset):
    """``(image, label)`` pairs decoded from ``files`` with PIL and ``transform``.

    A file that cannot be decoded (truncated, corrupt, not an image) is logged by name once
    per process and replaced by the next readable file, so a bad file never ends an epoch;
    :attr:`skipped` lists the files skipped in this process.
    """

    def __init__(
        self,
        files: Sequence[Path],
        labels: Tensor,
        transform: Callable,
        channels: int = 3,
    ):
        if len(files) != len(labels):
            raise ValueError(f"{len(files)} files but {len(labels)} labels")
        self.files = list(files)
        self.labels = labels
        self.transform = transform
        self.mode = "L" if channels == 1 else "RGB"
        self.skipped: list[Path] = []

    def __len__(self) -> int:
        return len(self.files)

    def folder(self) -> str:
        """The folder all the files are in (for messages)."""
        return os.path.commonpath([str(Path(p).parent) for p in self.files]) if self.files else "?"

    def decode(self, index: int) -> Tensor | None:
        """The transformed image at ``index``, or None (logged) when the file is unreadable."""
        path = self.files[index]
        try:
            with Image.open(path) as image:
                return self.transform(image.convert(self.mode))
        except DECODE_ERRORS as err:
            if path not in self.skipped:
                self.skipped.append(path)
                log.warning(
                    "skipping unreadable image %s (%s: %s); %d skipped so far",
                    path,
                    type(err).__name__,
                    err,
                    len(self.skipped),
                )
            return None

    def describe(self, index: int) -> str:
        """The file behind ``index``, for messages."""
        return str(self.files[index])

    def fingerprint(self) -> str:
        """Hash of the files' names, sizes and times and of the labels (cache staleness)."""
        from ganforge.data.cache import files_fingerprint

        return files_fingerprint(self.files, self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        for offset in range(len(self.files)):
            i = (index + offset) % len(self.files)
            image = self.decode(i)
            if image is not None:
                return image, self.labels[i]
        raise GanforgeError(
            f"none of the {len(self.files)} image files under {self.folder()} could be read"
        )


class _Decoded(Dataset):
    """Index -> (index, image or None): lets a loader collect failures instead of hiding them."""

    def __init__(self, files: ImageFiles):
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[int, Tensor | None]:
        return index, self.files.decode(index)


def _as_list(batch: list) -> list:
    return batch


def decode_all(files: ImageFiles, num_workers: int = 0) -> tuple[Tensor, Tensor]:
    """Decode every file once (in parallel) into uint8 pixels and labels, dropping and logging
    the unreadable ones with their count."""
    loader = DataLoader(
        _Decoded(files), batch_size=64, num_workers=num_workers, collate_fn=_as_list
    )
    images, keep, bad = [], [], []
    for batch in loader:
        for index, image in batch:
            if image is None:
                bad.append(files.describe(index))
            else:
                images.append(to_uint8(image))
                keep.append(index)
    if bad:
        log.warning(
            "skipped %d unreadable image file(s) of %d: %s",
            len(bad),
            len(files),
            ", ".join(bad),
        )
    if not images:
        raise GanforgeError(
            f"none of the {len(files)} image files under {files.folder()} could be read"
        )
    return torch.stack(images), files.labels[torch.tensor(keep)]
