"""Continuing a run exactly: every random stream and the W&B run id travel inside the
checkpoint, written and read back by :class:`ResumeState`."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig, open_dict

from ganforge.loggers import wandb_run_id
from ganforge.rng import capture_rng_states, fork_per_rank, restore_rng_states

#: checkpoint key holding the id of the W&B run that wrote it
WANDB_RUN_ID = "wandb_run_id"
#: checkpoint key holding the random streams (see :func:`ganforge.rng.capture_rng_states`)
RNG_STATES = "rng_states"
#: checkpoint key holding every DDP rank's random streams, in rank order
RNG_STATES_PER_RANK = "rng_states_per_rank"
#: logger targets that build a WandbLogger and accept ``id`` / ``resume``
WANDB_TARGETS = ("ganforge.loggers.make_wandb_logger", "lightning.pytorch.loggers.WandbLogger")


class ResumeState(L.Callback):
    """Saves the random streams and the W&B run id with every checkpoint; on resume restores
    the streams once Lightning's set-up has drawn from them; under DDP gives every rank its own
    noise stream. :class:`~ganforge.module.GANModule` attaches it to every trainer it runs in.

    Under DDP every rank's streams are saved (gathered from the ranks: Lightning builds the
    checkpoint on every rank), and a run resumed on as many ranks gives each its own streams
    back, so it continues exactly; on another number of ranks the streams are forked afresh
    from rank 0's."""

    def __init__(self) -> None:
        self._rng_to_restore: dict[str, Any] | None = None
        self._rng_per_rank: list[dict[str, Any]] | None = None

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        states = capture_rng_states()
        checkpoint[RNG_STATES] = states
        if trainer.world_size > 1:
            per_rank: list[Any] = [None] * trainer.world_size
            torch.distributed.all_gather_object(per_rank, states)
            checkpoint[RNG_STATES_PER_RANK] = per_rank
        if run_id := wandb_run_id(trainer.loggers):
            checkpoint[WANDB_RUN_ID] = run_id  # a resumed job continues this W&B run

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self._rng_to_restore = checkpoint.get(RNG_STATES)
        self._rng_per_rank = checkpoint.get(RNG_STATES_PER_RANK)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        per_rank, self._rng_per_rank = self._rng_per_rank, None
        if per_rank is not None and len(per_rank) == trainer.world_size > 1:
            restore_rng_states(per_rank[trainer.global_rank])
            self._rng_to_restore = None
            return
        if self._rng_to_restore is not None:
            restore_rng_states(self._rng_to_restore)
            self._rng_to_restore = None
        if trainer.world_size > 1:
            fork_per_rank(trainer.global_rank)


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
