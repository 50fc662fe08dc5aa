"""Dashboard-ready logging: honest step axes, learning rates, best-checkpoint summary, and the
run's report attached to its W&B run. The keys are described in ``docs/dashboard.md``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from ganforge.dashboard import (
    G_STEP,
    KIMG,
    LR_KEYS,
    attach_files,
    define_metrics,
    set_summary,
    wandb_runs,
)

log = logging.getLogger(__name__)


def best_checkpoint(trainer: L.Trainer) -> ModelCheckpoint | None:
    """The first checkpoint callback that monitors a metric and has kept a best file."""
    return next(
        (
            cb
            for cb in trainer.checkpoint_callbacks
            if isinstance(cb, ModelCheckpoint) and cb.monitor and cb.best_model_path
        ),
        None,
    )


class Dashboard(L.Callback):
    """Log ``train/g_step``, ``train/kimg``, ``lr/g`` and ``lr/d`` with every logged training
    row (all loggers, so TensorBoard and CSV get the same keys as W&B); on W&B runs, declare
    the axes and best-value summaries (:func:`ganforge.dashboard.define_metrics`), and at the
    end put the best checkpoint's path, generator iteration and score in the summary and
    attach ``report.html`` (and ``interpolation.gif``) from ``run_dir``.

    Args:
        run_dir: the run folder, where the report callback writes ``report.html``.
    """

    def __init__(self, run_dir: str | None = None):
        self.run_dir = Path(run_dir) if run_dir else None
        self.images_seen = 0

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit" and trainer.is_global_zero:
            for run in wandb_runs(trainer.loggers):
                define_metrics(run)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        images = batch[0] if isinstance(batch, list | tuple) else batch
        self.images_seen += images.shape[0] * trainer.world_size  # shapes are host ints
        if not trainer._logger_connector.should_update_logs:
            return
        opt_d, opt_g = pl_module.optimizers()
        values = {
            G_STEP: float(pl_module.g_step),
            KIMG: self.images_seen / 1000,
            LR_KEYS["g"]: opt_g.param_groups[0]["lr"],
            LR_KEYS["d"]: opt_d.param_groups[0]["lr"],
        }
        pl_module.log_dict(values, on_step=True, on_epoch=False, sync_dist=False)

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        if not trainer.is_global_zero:
            return
        summary: dict[str, Any] = {G_STEP: pl_module.g_step, KIMG: self.images_seen / 1000}
        best = best_checkpoint(trainer)
        if best is not None:
            path = best.best_model_path
            ckpt = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
            summary["best/ckpt_path"] = str(Path(best.best_model_path).resolve())
            summary["best/g_step"] = ckpt["global_step"] // pl_module.loss.steps_per_iteration
            summary["best/metric"] = best.monitor
            if best.best_model_score is not None:
                summary["best/score"] = float(best.best_model_score)
        set_summary(trainer.loggers, summary)
        if self.run_dir is not None:
            attach_files(trainer.loggers, self.run_dir, pl_module.g_step)

    def state_dict(self) -> dict[str, Any]:
        return {"images_seen": self.images_seen}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.images_seen = state_dict.get("images_seen", 0)
