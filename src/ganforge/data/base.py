"""Base datamodule for image datasets: shape metadata, train/val split and the two loaders."""

from __future__ import annotations

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset, random_split

from ganforge.data.loader import TensorBatches
from ganforge.errors import GanforgeError
from ganforge.pixels import to_float


def stack_dataset(dataset: Dataset, limit: int | None = None) -> tuple[Tensor, Tensor]:
    """The first ``limit`` (default: all) ``(x, y)`` items of a dataset as two tensors."""
    n = len(dataset) if limit is None else min(limit, len(dataset))
    if n == 0:
        return torch.empty(0), torch.empty(0, dtype=torch.long)
    xs, ys = zip(*DataLoader(Subset(dataset, range(n)), batch_size=256), strict=True)
    return torch.cat(xs), torch.cat(ys)


class SampleDataModule(L.LightningDataModule):
    """Common interface every ganforge datamodule implements; subclasses state their
    :attr:`sample_shape` (:class:`ImageDataModule` for images, the 2-D mixtures for points).

    Batches are ``(samples, labels)``: samples in [-1, 1] shaped (B, *sample_shape), labels
    a long tensor (all zeros when the data has no labels, where
    ``num_classes`` is None). With ``batches_per_step=k`` (the loss's ``n_critic``) every
    loader batch holds ``k * batch_size`` images, one fresh real batch per critic update.

    Two paths feed training:

    - ``in_memory=True``: :meth:`load_tensors` returns the whole dataset (uint8 pixels or
      floats in [-1, 1]), which is moved to the training device once and batched by index
      (:class:`TensorBatches`, with batch-level augmentation). With ``cache_dir`` set, the
      tensors come from a decoded cache there (:mod:`ganforge.data.cache`), built once by
      ``src/prepare.py`` or by the first run that needs it;
    - ``in_memory=False``: :meth:`load_dataset` returns a per-sample ``Dataset`` read by a
      ``DataLoader`` with ``num_workers`` workers and pinned memory. Under DDP, Lightning
      replaces its sampler with a ``DistributedSampler`` (``Trainer(use_distributed_sampler)``,
      on by default), so each rank reads a distinct shard and reshuffles every epoch.
    """

    name: str = "samples"

    def __init__(
        self,
        batch_size: int = 64,
        num_classes: int | None = None,
        num_val: int = 0,
        in_memory: bool = True,
        num_workers: int = 0,
        augment: str = "none",
        batches_per_step: int = 1,
        seed: int = 0,
        cache_dir: str | None = None,
    ):
        super().__init__()
        self.cache_dir = cache_dir
        self.batch_size = batch_size
        self.num_classes = num_classes
        self.num_val = num_val
        self.in_memory = in_memory
        self.num_workers = num_workers
        self.augment = augment
        self.batches_per_step = batches_per_step
        self.seed = seed
        self.train_set: tuple[Tensor, Tensor] | None = None
        self.val_set: tuple[Tensor, Tensor] | None = None
        self.train_dataset: Dataset | None = None
        self.val_dataset: Dataset | None = None

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one sample."""
        raise NotImplementedError

    def load_tensors(self) -> tuple[Tensor, Tensor]:
        """All samples (N, *sample_shape) as uint8 pixels or floats in [-1, 1], labels (N,)."""
        raise NotImplementedError

    def cache_spec(self) -> dict:
        """What the decoded cache entry depends on besides the source files; subclasses add
        their own fields (source folder, attributes, ...)."""
        return {
            "dataset": self.name,
            "split": getattr(self, "split", "train"),
            "crop": getattr(self, "crop", None),
            "image_size": self.image_size,
            "channels": self.channels,
        }

    def source_fingerprint(self) -> str:
        """Identity of the source data for datasets without per-file sources: the spec."""
        return repr(sorted(self.cache_spec().items()))

    def decoded_cache(self):
        """This dataset's decoded cache entry under ``cache_dir``."""
        from ganforge.data.cache import DecodedCache

        assert self.cache_dir is not None
        return DecodedCache(self, self.cache_dir)

    def prepare_data(self) -> None:
        # Lightning runs this on one process per node before setup: the cache is built once
        if self.in_memory and self.cache_dir:
            self.decoded_cache().prepare(self.num_workers)

    def load_dataset(self) -> Dataset:
        """Per-sample ``(x float in [-1, 1], y)`` dataset for the DataLoader path.

        The default wraps :meth:`load_tensors`; datasets read from files override it with a
        dataset that decodes and transforms one sample at a time.
        """
        x, y = self.load_tensors()
        return TensorDataset(to_float(x), y)

    def _check_shape(self, shape: tuple[int, ...]) -> None:
        if tuple(shape) != self.sample_shape:
            raise GanforgeError(
                f"{self.name}: samples have shape {tuple(shape)}, but the config implies "
                f"{self.sample_shape} (data.channels / data.image_size); fix the data config"
            )

    def _check_val_size(self, n: int) -> None:
        if n <= self.num_val:
            raise GanforgeError(
                f"{self.name}: {n} samples cannot spare data.num_val={self.num_val} for "
                "validation; lower data.num_val"
            )

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None or self.train_dataset is not None:
            return
        split = torch.Generator().manual_seed(self.seed)
        if self.in_memory:
            if self.cache_dir:
                x, y = self.decoded_cache().load(self.num_workers)
            else:
                x, y = self.load_tensors()
            self._check_shape(x.shape[1:])
            self._check_val_size(len(x))
            order = torch.randperm(len(x), generator=split)
            val, train = order[: self.num_val], order[self.num_val :]
            self.train_set = (x[train], y[train])
            self.val_set = (x[val], y[val])
            return
        dataset = self.load_dataset()
        self._check_val_size(len(dataset))
        self._check_shape(dataset[0][0].shape)
        sizes = [len(dataset) - self.num_val, self.num_val]
        self.train_dataset, self.val_dataset = random_split(dataset, sizes, generator=split)

    @property
    def loader_batch_size(self) -> int:
        return self.batch_size * self.batches_per_step

    def _rank_and_world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer else (0, 1)

    def train_dataloader(self) -> TensorBatches | DataLoader:
        if self.train_set is None and self.train_dataset is None:
            raise RuntimeError("call setup() first")
        if self.train_set is not None:
            x, y = self.train_set
            device = self.trainer.strategy.root_device if self.trainer else torch.device("cpu")
            rank, world = self._rank_and_world()
            return TensorBatches(
                x.to(device),
                y.to(device),
                self.loader_batch_size,
                seed=self.seed,
                rank=rank,
                world_size=world,
                augment=self.augment,
            )
        assert self.train_dataset is not None
        per_rank = len(self.train_dataset) // self._rank_and_world()[1]
        if per_rank < self.loader_batch_size:
            raise GanforgeError(
                f"{self.name}: batch of {self.loader_batch_size} is larger than the {per_rank} "
                "training samples per rank; lower data.batch_size"
            )
        return DataLoader(
            self.train_dataset,
            batch_size=self.loader_batch_size,
            shuffle=True,
            drop_last=True,
            num_workers=self.num_workers,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=self.num_workers > 0,
        )

    def real_images(self, split: str = "train", limit: int | None = None) -> tuple[Tensor, Tensor]:
        """Real samples (float in [-1, 1]) and labels of a split, for metrics and plots.

        ``limit`` caps how many are returned; on the DataLoader path only that many files are
        decoded.
        """
        self.setup()
        if self.train_set is not None:
            x, y = self.train_set if split == "train" else self.val_set
            return to_float(x[:limit]), y[:limit]
        dataset = self.train_dataset if split == "train" else self.val_dataset
        assert dataset is not None
        return stack_dataset(dataset, limit)


class ImageDataModule(SampleDataModule):
    """Images (channels, image_size, image_size) in [-1, 1]; the base of the image datasets."""

    name: str = "images"

    def __init__(self, batch_size: int = 64, image_size: int = 32, channels: int = 1, **kwargs):
        super().__init__(batch_size=batch_size, **kwargs)
        self.image_size = image_size
        self.channels = channels

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return (self.channels, self.image_size, self.image_size)
