"""Bad input found in the main process, before any DDP rank is spawned.

A rank that fails can only report text to the main process (see :mod:`ganforge.spawn`), and
every rank would repeat the same work to find the same problem. What can be checked once
beforehand is checked here: the data split (files listed, split sizes such as ``data.num_val``)
and the metric feature-extractor weights.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import lightning as L
from lightning.pytorch.strategies.launchers.multiprocessing import _MultiProcessingLauncher

from ganforge.callbacks.metrics import GANMetrics


def check_before_spawn(
    trainer: L.Trainer, datamodule: L.LightningDataModule, callbacks: Iterable[Any]
) -> None:
    """When ranks will be spawned: set up a copy of the data, then find the metric weights.

    The data is set up on a throw-away copy (``prepare_data`` then ``setup``, as Lightning
    does), so each rank still sets up its own: datasets that read the process's rank when
    built (LitData's streaming dataset) stay correct. A single process, or ranks started by
    torchrun/SLURM, find these errors in-process, where ``run_job`` prints them as one line
    already, so nothing is checked twice there. Metric callbacks that ``fast_dev_run`` skips
    are skipped.
    """
    if not isinstance(trainer.strategy.launcher, _MultiProcessingLauncher):
        return
    probe = copy.deepcopy(datamodule)
    probe.trainer = trainer  # as trainer.fit attaches it: setup may look at the callbacks
    probe.prepare_data()
    probe.setup("fit")
    if trainer.fast_dev_run:
        return
    for callback in callbacks:
        if isinstance(callback, GANMetrics):
            callback.check_weights(datamodule)
