"""Decoded-image cache: decode, crop and resize a dataset once into uint8 arrays on disk.

A cache entry is a folder ``<cache_dir>/<key>/`` holding ``images.npy`` (N, C, H, W uint8),
``labels.npy`` (N,) int64 and ``meta.json`` (the spec, the source fingerprint and the byte
size of both arrays). The key names dataset, split, crop and image size, plus a short hash
of the full spec (source folder, attributes, ...), so two folders never share an entry.

Conventions shared with the real-statistics cache (:mod:`ganforge.metrics.real`): entries
are written to a temporary folder next to their final place and renamed into it, so parallel
jobs never read half an entry; when two jobs build the same entry, the first rename wins and
the other job uses it. An entry whose source fingerprint differs from the source's (files
added, removed or changed) is stale and rebuilt, saying so; an entry with a truncated array
file is a :class:`GanforgeError` naming the file (never used, never silently replaced, since
a truncated file means a disk or copy problem the user should see).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sized
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from rich.progress import track
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ganforge.errors import GanforgeError
from ganforge.pixels import to_uint8

log = logging.getLogger(__name__)

#: bump when the entry layout or decoding changes, so old entries read as stale
FORMAT = 1


class Source(Sized, Protocol):
    """Per-sample decoder a datamodule exposes for caching (e.g. :class:`ImageFiles`)."""

    labels: Tensor

    def decode(self, index: int) -> Tensor | None: ...

    def describe(self, index: int) -> str: ...


def cache_key(spec: dict[str, Any]) -> str:
    """Readable entry name: dataset-split-crop-size, then a hash of the whole spec."""
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]
    crop = spec.get("crop") or "none"
    return (
        f"{spec['dataset']}-{spec.get('split', 'train')}-crop{crop}-"
        f"{spec['image_size']}px{spec['channels']}c-{digest}"
    )


def files_fingerprint(paths: list[Path], labels: Tensor) -> str:
    """Hash of every file's name, size and modification time, and of the labels."""
    h = hashlib.sha256()
    for p in paths:
        st = p.stat()
        h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    h.update(labels.numpy().tobytes())
    return h.hexdigest()


class _Decoded(Dataset):
    """Index -> (index, uint8 image or None), so a loader's workers decode in parallel."""

    def __init__(self, source: Source):
        self.source = source

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> tuple[int, Tensor | None]:
        image = self.source.decode(index)
        return index, None if image is None else to_uint8(image)


def _as_list(batch: list) -> list:
    return batch


def _none_readable(source: Source, n: int, what: str) -> GanforgeError:
    where = f" under {source.folder()}" if hasattr(source, "folder") else ""
    return GanforgeError(f"{what}: none of the {n} image files{where} could be read")


def _decode_into(source: Source, folder: Path, num_workers: int, what: str) -> int:
    """Decode ``source`` into ``folder/images.npy`` and ``labels.npy``; return images kept."""
    n = len(source)
    first = next((im for im in map(source.decode, range(n)) if im is not None), None)
    if first is None:
        raise _none_readable(source, n, what)
    shape = tuple(to_uint8(first).shape)
    images = np.lib.format.open_memmap(
        folder / "images.npy", mode="w+", dtype=np.uint8, shape=(n, *shape)
    )
    loader = DataLoader(
        _Decoded(source),
        batch_size=64,
        num_workers=num_workers,
        collate_fn=_as_list,
        # its own generator: building the cache must not advance the global RNG, or a run
        # that builds it would train differently from one that finds it
        generator=torch.Generator(),
    )
    keep, bad = [], []
    for batch in track(loader, description=f"preparing {what}", total=len(loader)):
        for index, image in batch:
            if image is None:
                bad.append(source.describe(index))  # the source logged it by name
            else:
                images[len(keep)] = image.numpy()
                keep.append(index)
    if not keep:
        raise _none_readable(source, n, what)
    if bad:
        shown = ", ".join(bad[:10]) + (" ..." if len(bad) > 10 else "")
        log.warning("%s: skipped %d unreadable image(s) of %d: %s", what, len(bad), n, shown)
        compact = np.lib.format.open_memmap(
            folder / "kept.npy", mode="w+", dtype=np.uint8, shape=(len(keep), *shape)
        )
        for start in range(0, len(keep), 4096):
            stop = min(start + 4096, len(keep))
            compact[start:stop] = images[start:stop]
        compact.flush()
        del images, compact
        os.replace(folder / "kept.npy", folder / "images.npy")
    else:
        images.flush()
        del images
    np.save(folder / "labels.npy", source.labels[torch.tensor(keep)].numpy().astype(np.int64))
    return len(keep)


def _write_tensors(x: Tensor, y: Tensor, folder: Path) -> int:
    if x.dtype != torch.uint8:
        if x.dim() != 4:
            raise GanforgeError("only image datasets (N, C, H, W) can be prepared into a cache")
        x = to_uint8(x)
    np.save(folder / "images.npy", x.contiguous().numpy())
    np.save(folder / "labels.npy", y.numpy().astype(np.int64))
    return len(x)


class DecodedCache:
    """One datamodule's cache entry under ``cache_dir``: find, check, build and read it."""

    def __init__(self, datamodule, cache_dir: str | Path):
        self.datamodule = datamodule
        self.spec = {"format": FORMAT, **datamodule.cache_spec()}
        self.folder = Path(cache_dir).expanduser() / cache_key(self.spec)
        self._source: Source | None = None

    def source(self) -> Source | None:
        """The datamodule's per-sample decoder, or None when it loads whole tensors."""
        if self._source is None and hasattr(self.datamodule, "cache_source"):
            self._source = self.datamodule.cache_source()
        return self._source

    def fingerprint(self) -> str:
        """What the entry was built from; a different value means the entry is stale."""
        source = self.source()
        if source is not None and hasattr(source, "fingerprint"):
            return source.fingerprint()
        return self.datamodule.source_fingerprint()

    def meta(self) -> dict[str, Any] | None:
        """The entry's metadata, or None when there is no complete entry."""
        try:
            return json.loads((self.folder / "meta.json").read_text())
        except (OSError, ValueError):
            return None

    def check_files(self, meta: dict[str, Any]) -> None:
        """Raise naming the array file whose size differs from the one recorded."""
        for name, size in meta["bytes"].items():
            path = self.folder / name
            actual = path.stat().st_size if path.is_file() else 0
            if actual != size:
                raise GanforgeError(
                    f"decoded cache file {path} is truncated or damaged ({actual} of {size} "
                    f"bytes); delete {self.folder} and run prepare again"
                )

    def is_fresh(self) -> bool:
        """Whether a complete, intact entry built from the current source exists."""
        meta = self.meta()
        if meta is None:
            return False
        self.check_files(meta)
        return meta["fingerprint"] == self.fingerprint()

    def prepare(self, num_workers: int = 0) -> Path:
        """Build the entry unless a fresh one exists; return its folder."""
        meta = self.meta()
        if meta is not None:
            self.check_files(meta)
            if meta["fingerprint"] == self.fingerprint():
                log.info("decoded cache %s is up to date (%d images)", self.folder, meta["count"])
                return self.folder
            log.warning("decoded cache %s is stale (source changed); rebuilding it", self.folder)
        else:
            log.warning(
                "no decoded cache for %s at %s; preparing it now (once, later runs reuse it)",
                self.datamodule.name,
                self.folder,
            )
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self.folder.parent, prefix=f".{self.folder.name}."))
        try:
            source = self.source()
            if source is None:
                count = _write_tensors(*self.datamodule.load_tensors(), tmp)
            else:
                count = _decode_into(source, tmp, num_workers, self.datamodule.name)
            names = ("images.npy", "labels.npy")
            meta = {
                "spec": self.spec,
                "fingerprint": self.fingerprint(),
                "count": count,
                "bytes": {n: (tmp / n).stat().st_size for n in names},
            }
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
            self._install(tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        log.info("decoded cache %s: %d images", self.folder, count)
        return self.folder

    def _install(self, tmp: Path) -> None:
        """Rename the finished ``tmp`` into place (atomic); a stale entry is moved aside first,
        and an entry another job installed meanwhile is kept."""
        aside = None
        if self.folder.exists():
            aside = Path(tempfile.mkdtemp(dir=self.folder.parent, prefix=".stale."))
            with contextlib.suppress(OSError):  # another job moved it first
                os.replace(self.folder, aside / "entry")
        try:
            os.rename(tmp, self.folder)
        except OSError:
            log.info("decoded cache %s was written by another job; using it", self.folder)
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)

    def load(self, num_workers: int = 0) -> tuple[Tensor, Tensor]:
        """The cached images (uint8, memory-mapped) and labels, preparing them first if needed."""
        if not self.is_fresh():
            self.prepare(num_workers)
        meta = self.meta()
        assert meta is not None
        self.check_files(meta)
        try:
            images = np.load(self.folder / "images.npy", mmap_mode="c")
            labels = np.load(self.folder / "labels.npy")
        except (OSError, ValueError) as err:
            raise GanforgeError(
                f"decoded cache {self.folder} cannot be read ({err}); delete it and run prepare "
                "again"
            ) from err
        return torch.from_numpy(images), torch.from_numpy(labels)
