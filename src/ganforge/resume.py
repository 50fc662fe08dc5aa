"""Continuing a run from a checkpoint: the W&B run id travels inside the checkpoint."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from lightning.pytorch.loggers import Logger, WandbLogger
from omegaconf import DictConfig, open_dict

#: checkpoint key holding the id of the W&B run that wrote it
WANDB_RUN_ID = "wandb_run_id"
#: logger targets that build a WandbLogger and accept ``id`` / ``resume``
WANDB_TARGETS = ("ganforge.loggers.make_wandb_logger", "lightning.pytorch.loggers.WandbLogger")


def wandb_run_id(loggers: Iterable[Logger]) -> str | None:
    """The id of the first W&B run among ``loggers`` (None without one)."""
    return next((lg.version for lg in loggers if isinstance(lg, WandbLogger)), None)


def resume_wandb(logger_cfg: DictConfig | None, ckpt: dict[str, Any]) -> str | None:
    """Point the W&B logger configs at the run that wrote ``ckpt`` (``id`` + ``resume="allow"``),
    so a resumed job keeps logging to the same W&B run; return that id."""
    run_id = ckpt.get(WANDB_RUN_ID)
    if not run_id or not logger_cfg:
        return None
    for node in logger_cfg.values():
        if isinstance(node, DictConfig) and node.get("_target_") in WANDB_TARGETS:
            with open_dict(node):
                node.id = node.get("id") or run_id
                node.resume = "allow"
    return run_id
