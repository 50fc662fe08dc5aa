"""Logging images to whichever loggers take them (W&B, TensorBoard); CSV simply has none."""

from __future__ import annotations

from collections.abc import Iterable

from lightning.pytorch.loggers import Logger, TensorBoardLogger, WandbLogger
from torch import Tensor


def log_image(loggers: Iterable[Logger], key: str, image: Tensor, step: int) -> None:
    """Log a (C, H, W) image in [0, 1] under ``key`` at ``step`` to every image-capable logger."""
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image(key=key, images=[image], step=step)
        elif isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(key, image, global_step=step)
