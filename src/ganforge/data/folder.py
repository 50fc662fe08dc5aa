"""Any directory tree of images, read recursively; optionally labelled by top-level subfolder."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.datasets.folder import IMG_EXTENSIONS, has_file_allowed_extension

from ganforge.data.base import ImageDataModule
from ganforge.data.files import ImageFiles, decode_all
from ganforge.data.transforms import sample_transform
from ganforge.errors import GanforgeError

log = logging.getLogger(__name__)


def find_images(root: Path) -> tuple[list[Path], int]:
    """Image files under ``root`` (recursive, sorted) and the count of other files ignored."""
    files = sorted(p for p in root.rglob("*") if p.is_file())
    images = [p for p in files if has_file_allowed_extension(p.name, IMG_EXTENSIONS)]
    return images, len(files) - len(images)


class ImageFolderDataModule(ImageDataModule):
    """Every image under ``path`` (any depth), resized and centre-cropped to ``image_size``.

    Unlabelled by default. With ``labels_from_subfolders=true`` each top-level subfolder is a
    class (sorted names), and ``num_classes`` must match their count. Unreadable files are
    logged by name and skipped.
    """

    name = "folder"

    def __init__(
        self,
        path: str,
        labels_from_subfolders: bool = False,
        in_memory: bool = False,
        num_workers: int = 4,
        channels: int = 3,
        **kwargs,
    ):
        super().__init__(in_memory=in_memory, num_workers=num_workers, channels=channels, **kwargs)
        self.path = Path(path)
        self.labels_from_subfolders = labels_from_subfolders

    def _labels(self, images: list[Path]) -> Tensor:
        if not self.labels_from_subfolders:
            if self.num_classes:
                raise GanforgeError(
                    f"folder: data.num_classes={self.num_classes} but the images are unlabelled;"
                    " set data.labels_from_subfolders=true or data.num_classes=null"
                )
            return torch.zeros(len(images), dtype=torch.long)
        classes = sorted(
            {p.relative_to(self.path).parts[0] for p in images if p.parent != self.path}
        )
        if self.num_classes != len(classes):
            raise GanforgeError(
                f"folder: {self.path} has {len(classes)} class subfolders ({', '.join(classes)}); "
                f"set data.num_classes={len(classes)} (got {self.num_classes})"
            )
        index = {c: i for i, c in enumerate(classes)}
        loose = [p for p in images if p.parent == self.path]
        if loose:
            raise GanforgeError(
                f"folder: {len(loose)} image(s) sit directly in {self.path} (e.g. {loose[0].name})"
                " but labels come from subfolders; move them into a class folder"
            )
        return torch.tensor([index[p.relative_to(self.path).parts[0]] for p in images])

    def image_files(self, augment: str = "none") -> ImageFiles:
        """The image files found under ``path`` with this module's transform."""
        if not self.path.is_dir():
            raise GanforgeError(f"folder: data.path={self.path} is not a directory")
        images, others = find_images(self.path)
        log.info(
            "folder %s: found %d images (%d other files ignored)", self.path, len(images), others
        )
        if not images:
            raise GanforgeError(
                f"folder: no image files under {self.path} (looked for {', '.join(IMG_EXTENSIONS)})"
            )
        transform = sample_transform(self.image_size, self.channels, augment)
        return ImageFiles(images, self._labels(images), transform, self.channels)

    def cache_spec(self) -> dict:
        return {
            **super().cache_spec(),
            "path": str(self.path.resolve()),
            "labels_from_subfolders": self.labels_from_subfolders,
        }

    def cache_source(self) -> ImageFiles:
        """The per-file decoder the decoded cache is built from (no augmentation)."""
        return self.image_files()

    def load_tensors(self) -> tuple[Tensor, Tensor]:
        return decode_all(self.image_files(), self.num_workers)

    def load_dataset(self) -> Dataset:
        return self.image_files(self.augment)
