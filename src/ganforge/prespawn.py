"""Bad input found in the main process, before any DDP rank is spawned.

A rank that fails can only report text to the main process (see :mod:`ganforge.spawn`), and
every rank would repeat the same work to find the same problem. What can be checked once
beforehand is checked here: the data split (files listed, split sizes such as ``data.num_val``)
and the metric feature-extractor weights. A single process gets the same checks, so a bad
input fails the same way whatever ``trainer.devices`` is.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import lightning as L

from ganforge.callbacks.metrics import GANMetrics


def check_before_spawn(
    trainer: L.Trainer, datamodule: L.LightningDataModule, callbacks: Iterable[Any]
) -> None:
    """Set up the data (split sizes, files) and find the metric weights in this process.

    The datamodule's ``setup`` is idempotent, so the ranks reuse the split made here (spawn
    hands them the set-up datamodule); metric callbacks that ``fast_dev_run`` skips are skipped.
    """
    datamodule.trainer = trainer  # as trainer.fit attaches it: setup may look at the callbacks
    datamodule.setup("fit")
    if trainer.fast_dev_run:
        return
    for callback in callbacks:
        if isinstance(callback, GANMetrics):
            callback.check_weights(datamodule)
