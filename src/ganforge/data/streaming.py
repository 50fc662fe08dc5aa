"""Streaming shards with LitData: written once by ``src/prepare.py``, read by every rank.

``write_shards`` turns a decoded cache entry into LitData chunks (``litdata.optimize``) in a
local folder or an object-store URI (``s3://``, ``gs://``, ...). :class:`StreamingDataModule`
reads them with ``StreamingDataset``/``StreamingDataLoader``: each rank (and each worker)
reads its own chunks, the shuffle is seeded by ``data.seed`` and the epoch, and the loader's
``state_dict`` travels in Lightning's checkpoint (Lightning saves and restores the state of a
stateful training loader), so a stopped run resumes at the next unseen sample.
"""

from __future__ import annotations

import functools
import json
import logging
import signal
import sys
from pathlib import Path

import numpy as np
import torch
from litdata import StreamingDataLoader, StreamingDataset, optimize
from torch import Tensor

from ganforge.data.base import ImageDataModule
from ganforge.data.loader import to_float
from ganforge.errors import GanforgeError

log = logging.getLogger(__name__)


def _samples(start: int, folder: str, step: int):
    """The (image, label) samples ``start .. start+step`` of a decoded cache entry."""
    images = np.load(Path(folder) / "images.npy", mmap_mode="r")
    labels = np.load(Path(folder) / "labels.npy")
    for i in range(start, min(start + step, len(images))):
        yield {"image": np.ascontiguousarray(images[i]), "label": int(labels[i])}


def write_shards(
    cache_folder: str | Path,
    output_dir: str,
    num_workers: int = 1,
    chunk_bytes: str = "64MB",
) -> None:
    """Write the decoded cache entry in ``cache_folder`` as LitData shards to ``output_dir``
    (a folder or a URI), replacing shards already there."""
    count = len(np.load(Path(cache_folder) / "labels.npy"))
    step = 256
    log.info("writing %d samples as LitData shards to %s", count, output_dir)
    # LitData's processor installs its own SIGINT handler and leaves it there: put ours back
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        optimize(
            fn=functools.partial(_samples, folder=str(cache_folder), step=step),
            inputs=list(range(0, count, step)),
            output_dir=output_dir,
            chunk_bytes=chunk_bytes,
            num_workers=max(1, num_workers),
            mode="overwrite",
            keep_data_ordered=True,
            verbose=False,
            # forked workers start at once; spawned ones re-import torch and ganforge (~10 s)
            start_method="fork" if sys.platform == "linux" else None,
        )
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def check_local_shards(path: Path) -> None:
    """Raise naming the first local shard that is missing or shorter than its index says."""
    index = path / "index.json"
    try:
        chunks = json.loads(index.read_text())["chunks"]
    except (OSError, ValueError, KeyError) as err:
        raise GanforgeError(
            f"streaming: {index} is missing or unreadable ({err}); write the shards with "
            f"python src/prepare.py data=<dataset> shards={path}"
        ) from err
    for chunk in chunks:
        shard = path / chunk["filename"]
        size = shard.stat().st_size if shard.is_file() else 0
        if size < chunk["chunk_bytes"]:
            raise GanforgeError(
                f"streaming: shard {shard} is truncated or missing ({size} of at least "
                f"{chunk['chunk_bytes']} bytes); write the shards again with src/prepare.py"
            )


def _to_pair(sample: dict) -> tuple[Tensor, Tensor]:
    """A stored sample as (uint8 image tensor, long label)."""
    return torch.as_tensor(sample["image"]), torch.tensor(sample["label"], dtype=torch.long)


def _collate(samples: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
    """Stack a batch and convert it to floats in [-1, 1] (in the loader's workers)."""
    images, labels = zip(*samples, strict=True)
    return to_float(torch.stack(images)), torch.stack(labels)


class ResumableStreamingLoader(StreamingDataLoader):
    """``StreamingDataLoader`` whose restored position applies to one pass only.

    LitData keeps resuming from a loaded state until a pass runs to exhaustion, but Lightning
    stops a pass after ``len(loader)`` batches (or ``limit_train_batches``) without exhausting
    it; the next epoch would then continue the old position and yield nothing. Here the
    first pass started after :meth:`load_state_dict` resumes, and every later pass starts a
    fresh epoch, as in a run that was never stopped.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._resume_pending = False

    def load_state_dict(self, obj: dict) -> None:
        super().load_state_dict(obj)
        self._resume_pending = self.restore

    def __iter__(self):
        # runs at the first batch: a pass Lightning creates but never reads changes nothing
        if not self._resume_pending:
            self.restore = False
        self._resume_pending = False
        yield from super().__iter__()


class StreamingDataModule(ImageDataModule):
    """Images from LitData shards at ``path`` (folder or URI) written by ``src/prepare.py``.

    ``image_size``, ``channels`` and ``num_classes`` must describe the shards (checked on the
    first sample). ``download_dir`` is where remote chunks are cached (LitData's default when
    null). Augmentation is not applied on this path (``augment`` must be ``none``).
    """

    name = "streaming"

    def __init__(
        self,
        path: str,
        download_dir: str | None = None,
        num_workers: int = 2,
        channels: int = 3,
        **kwargs,
    ):
        kwargs["in_memory"] = False
        super().__init__(num_workers=num_workers, channels=channels, **kwargs)
        self.path = path
        self.download_dir = download_dir
        if self.augment != "none":
            raise GanforgeError(
                f"streaming: data.augment={self.augment!r} is not supported on streaming shards; "
                "use data.augment=none"
            )
        if self.num_val:
            raise GanforgeError(
                "streaming: shards hold one split; set data.num_val=0 (metrics use "
                "real_split=train)"
            )
        self._loader: ResumableStreamingLoader | None = None

    def _dataset(self, shuffle: bool) -> StreamingDataset:
        if "://" not in self.path:
            check_local_shards(Path(self.path))
        return StreamingDataset(
            self.path,
            cache_dir=self.download_dir,
            shuffle=shuffle,
            drop_last=True,
            seed=self.seed,
            transform=_to_pair,
        )

    def setup(self, stage: str | None = None) -> None:
        if self.train_dataset is not None:
            return
        dataset = self._dataset(shuffle=True)
        self._check_shape(tuple(dataset[0][0].shape))
        self.train_dataset = dataset

    def train_dataloader(self) -> ResumableStreamingLoader:
        if self.train_dataset is None:
            raise RuntimeError("call setup() first")
        if self._loader is None:
            # one loader for the whole fit: its epoch counter and state live on it
            self._loader = ResumableStreamingLoader(
                self.train_dataset,
                batch_size=self.loader_batch_size,
                num_workers=self.num_workers,
                collate_fn=_collate,
                drop_last=True,
                pin_memory=torch.cuda.is_available(),
                # its own generator: starting an epoch must not draw from the global RNG, which
                # a resumed run restores to the step it stopped at, not to the epoch start
                generator=torch.Generator().manual_seed(self.seed),
            )
            if len(self._loader) == 0:
                raise GanforgeError(
                    f"streaming: batch of {self.loader_batch_size} is larger than the samples "
                    "per rank; lower data.batch_size"
                )
        return self._loader

    def real_images(self, split: str = "train", limit: int | None = None) -> tuple[Tensor, Tensor]:
        """The first ``limit`` samples of the shards in stored order (for metrics and plots)."""
        dataset = self._dataset(shuffle=False)
        n = len(dataset) if limit is None else min(limit, len(dataset))
        images, labels = zip(*(dataset[i] for i in range(n)), strict=True)
        return to_float(torch.stack(images)), torch.stack(labels)
