"""Logging images to whichever loggers take them (W&B, TensorBoard); CSV simply has none."""

from __future__ import annotations

from collections.abc import Iterable

from lightning.pytorch.loggers import Logger, TensorBoardLogger, WandbLogger
from torch import Tensor

from ganforge.dashboard import G_STEP


def log_image(
    loggers: Iterable[Logger], key: str, image: Tensor, step: int, caption: str | None = None
) -> None:
    """Log a (C, H, W) image in [0, 1] under ``key`` at generator iteration ``step`` to every
    image-capable logger; W&B shows ``caption`` under it and plots it at ``train/g_step``."""
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            import wandb

            logger.experiment.log({key: wandb.Image(image, caption=caption), G_STEP: step})
        elif isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(key, image, global_step=step)
            if caption:
                logger.experiment.add_text(f"{key}/caption", caption, global_step=step)
