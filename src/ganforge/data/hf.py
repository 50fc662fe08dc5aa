"""Image datasets from Hugging Face ``datasets``: the hub when online, local folders offline.

``data.name`` is a hub id (``user/dataset``), a folder written by ``Dataset.save_to_disk`` or
``DatasetDict.save_to_disk``, or a folder of ``.parquet`` files. The image column holds PIL
images (``datasets.Image``) or encoded image bytes; the optional label column holds integers.
Like CelebA and image folders, the images are decoded once into the decoded cache
(:mod:`ganforge.data.cache`), keyed by the dataset's own fingerprint.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from ganforge.data.base import ImageDataModule
from ganforge.data.files import DECODE_ERRORS, decode_all
from ganforge.data.transforms import sample_transform
from ganforge.errors import GanforgeError

log = logging.getLogger(__name__)


def open_hf(name: str, split: str):
    """The ``split`` of a local ``save_to_disk`` folder, a local parquet folder or a hub id."""
    import datasets

    path = Path(name).expanduser()
    if path.is_dir():
        if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
            loaded = datasets.load_from_disk(str(path))
            if isinstance(loaded, datasets.DatasetDict):
                if split not in loaded:
                    raise GanforgeError(
                        f"hf: {path} has splits {list(loaded)}, not data.split={split!r}"
                    )
                loaded = loaded[split]
            return loaded
        files = sorted(str(p) for p in path.rglob("*.parquet"))
        if not files:
            raise GanforgeError(
                f"hf: {path} is neither a save_to_disk folder nor holds .parquet files"
            )
        return datasets.load_dataset("parquet", data_files=files, split="train")
    try:
        return datasets.load_dataset(name, split=split)
    except Exception as err:  # the hub client raises many types; all mean the same to a user
        raise GanforgeError(
            f"hf: cannot load {name!r} split {split!r} from the Hugging Face hub ({err}); "
            "offline, point data.name at a local save_to_disk or parquet folder"
        ) from err


class HFImages(Dataset):
    """``(image, label)`` pairs decoded from a Hugging Face dataset's image column."""

    def __init__(self, data, image_column: str, labels: Tensor, transform, channels: int):
        self.data = data.select_columns([image_column])
        self.image_column = image_column
        self.labels = labels
        self.transform = transform
        self.mode = "L" if channels == 1 else "RGB"
        self.name = getattr(data, "_fingerprint", "")

    def __len__(self) -> int:
        return len(self.data)

    def describe(self, index: int) -> str:
        return f"row {index} of the Hugging Face dataset"

    def fingerprint(self) -> str:
        from ganforge.data.cache import files_fingerprint

        return f"{self.name}-{files_fingerprint([], self.labels)}"

    def decode(self, index: int) -> Tensor | None:
        """The transformed image of row ``index``, or None (logged) when it cannot be read."""
        value = self.data[index][self.image_column]
        try:
            if isinstance(value, dict):  # undecoded datasets.Image: {"bytes", "path"}
                raw = value.get("bytes")
                value = Image.open(io.BytesIO(raw) if raw else value["path"])
            if not isinstance(value, Image.Image):
                raise ValueError(f"not an image but {type(value).__name__}")
            return self.transform(value.convert(self.mode))
        except DECODE_ERRORS as err:
            log.warning("skipping unreadable image in %s (%s)", self.describe(index), err)
            return None

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        for offset in range(len(self)):
            i = (index + offset) % len(self)
            image = self.decode(i)
            if image is not None:
                return image, self.labels[i]
        raise GanforgeError("hf: none of the images could be read")


class HFDataModule(ImageDataModule):
    """A Hugging Face image dataset, centre-cropped (optional) and resized to ``image_size``.

    Args:
        name: hub id, or a local ``save_to_disk`` / parquet folder.
        split: the split to train on.
        image_column: column holding the images.
        label_column: integer label column (null: unlabelled); ``num_classes`` must be set.
        crop: side of the centre square kept before resizing (null: none).
    """

    name = "hf"

    def __init__(
        self,
        name: str,
        split: str = "train",
        image_column: str = "image",
        label_column: str | None = None,
        crop: int | None = None,
        in_memory: bool = True,
        num_workers: int = 4,
        channels: int = 3,
        **kwargs,
    ):
        super().__init__(in_memory=in_memory, num_workers=num_workers, channels=channels, **kwargs)
        self.source_name = name
        self.split = split
        self.image_column = image_column
        self.label_column = label_column
        self.crop = crop

    def _labels(self, data) -> Tensor:
        if self.label_column is None:
            if self.num_classes:
                raise GanforgeError(
                    f"hf: data.num_classes={self.num_classes} but data.label_column is null"
                )
            return torch.zeros(len(data), dtype=torch.long)
        if self.label_column not in data.column_names:
            raise GanforgeError(
                f"hf: no column {self.label_column!r} (data.label_column); columns: "
                f"{data.column_names}"
            )
        labels = torch.as_tensor(data[self.label_column], dtype=torch.long)
        found = int(labels.max()) + 1 if len(labels) else 0
        if not self.num_classes or found > self.num_classes:
            raise GanforgeError(
                f"hf: labels in {self.label_column!r} go up to {found - 1}; set "
                f"data.num_classes (>= {found}), got {self.num_classes}"
            )
        return labels

    def images(self, augment: str = "none") -> HFImages:
        """The split's rows as a per-sample decoder with this module's transform."""
        data = open_hf(self.source_name, self.split)
        if self.image_column not in data.column_names:
            raise GanforgeError(
                f"hf: no column {self.image_column!r} (data.image_column); columns: "
                f"{data.column_names}"
            )
        log.info("hf %s: %d rows in split %s", self.source_name, len(data), self.split)
        transform = sample_transform(self.image_size, self.channels, augment, self.crop)
        return HFImages(data, self.image_column, self._labels(data), transform, self.channels)

    def cache_spec(self) -> dict:
        local = Path(self.source_name).expanduser()
        source = str(local.resolve()) if local.exists() else self.source_name
        return {
            **super().cache_spec(),
            "source": source,
            "image_column": self.image_column,
            "label_column": self.label_column,
        }

    def cache_source(self) -> HFImages:
        return self.images()

    def load_tensors(self) -> tuple[Tensor, Tensor]:
        return decode_all(self.images(), self.num_workers)

    def load_dataset(self) -> Dataset:
        return self.images(self.augment)
