"""Files written whole or not at all: a temporary file in the destination folder, ``fsync``,
then a rename over the destination (atomic on one filesystem, unlike a temporary file in
``/tmp``), with the permissions an ordinary file gets, so shared caches stay group-readable."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.cloud_io import _is_local_file_protocol
from lightning.pytorch.plugins.io import TorchCheckpointIO

log = logging.getLogger(__name__)

#: suffix of the temporary files; a leftover one (the writer was SIGKILLed) is removed on start
TEMP_SUFFIX = ".partial"


def _default_mode() -> int:
    """The mode ``open()`` gives a new file under the current umask (``mkstemp`` gives 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save(obj, path)`` through a temporary file next to ``path``: readers see the old
    file or the new one, never half a file, and a crash leaves at most a ``*.partial`` file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a power loss
    finally:
        os.close(dir_fd)


def remove_partial_files(folder: str | Path) -> list[Path]:
    """Delete temporary files a killed writer left in ``folder``; return them."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    # ours, and the ``<name>.ckpt.tmp`` of ganforge's preemption callback
    stale = sorted([*folder.glob(f".*{TEMP_SUFFIX}"), *folder.glob("*.ckpt.tmp")])
    for path in stale:
        path.unlink(missing_ok=True)
        log.info("removed %s, left by a writer that was killed mid-write", path)
    return stale


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, but atomic inside the checkpoint's own folder (Lightning's
    default stages the file in the system temp folder, then moves it across filesystems)."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or not _is_local_file_protocol(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        atomic_torch_save(checkpoint, path)
