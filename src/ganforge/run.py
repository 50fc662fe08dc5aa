"""The training job: build everything from a composed config, fit, and report the sweep metric."""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, ModelSummary, ProgressBar
from omegaconf import DictConfig, OmegaConf

from ganforge import checks
from ganforge.atomic import AtomicCheckpointIO, remove_partial_files
from ganforge.build import build_module
from ganforge.callbacks.preemption import Preemption
from ganforge.checkpoint import resume_path
from ganforge.config import instantiate_list
from ganforge.prespawn import check_before_spawn
from ganforge.resume import resume_wandb
from ganforge.resume_changes import ApplyResumeChanges, check_resume_config
from ganforge.strategy import describe_run
from ganforge.sweep import sweep_value

log = logging.getLogger(__name__)


def _enabled(callbacks: list[L.Callback], trainer_cfg: DictConfig) -> list[L.Callback]:
    """Drop the progress bar / model summary callbacks the trainer flags turn off, so that
    ``trainer.enable_progress_bar=false`` works with the default callbacks."""
    off = []
    if not trainer_cfg.get("enable_progress_bar", True):
        off.append(ProgressBar)
    if not trainer_cfg.get("enable_model_summary", True):
        off.append(ModelSummary)
    return [cb for cb in callbacks if not isinstance(cb, tuple(off))]


def train(cfg: DictConfig) -> float | None:
    """Fit a GAN as configured; return the value of ``cfg.optimized_metric`` (for sweeps)."""
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    if cfg.get("float32_matmul_precision"):
        torch.set_float32_matmul_precision(cfg.float32_matmul_precision)

    log.info("building datamodule <%s>", cfg.data._target_)
    checks.check_data_path(cfg.data)
    datamodule: L.LightningDataModule = hydra.utils.instantiate(cfg.data)
    log.info("building model <%s>", cfg.model.generator._target_)
    checks.check_data_fits_model(datamodule, cfg)
    module = build_module(cfg)
    checks.check_networks_fit_data(module, datamodule)
    ckpt_path = resume_path(
        cfg.get("ckpt_path"), OmegaConf.select(cfg, "callbacks.checkpoint.dirpath")
    )
    changes = []
    if ckpt_path:
        ckpt = checks.check_resume_checkpoint(ckpt_path, module, cfg)
        changes = check_resume_config(ckpt, cfg, ckpt_path)
        if run_id := resume_wandb(cfg.get("logger"), ckpt):
            log.info("resuming W&B run %s", run_id)

    callbacks = _enabled(instantiate_list(cfg.get("callbacks")), cfg.trainer)
    if changes:
        callbacks.append(ApplyResumeChanges(changes))
    checks.run_preflights([datamodule, *callbacks])
    for cb in callbacks:  # temporary files of a checkpoint write cut short by SIGKILL
        if isinstance(cb, ModelCheckpoint | Preemption) and cb.dirpath:
            remove_partial_files(cb.dirpath)
    loggers = instantiate_list(cfg.get("logger"))
    # checkpoints are written atomically inside their folder (Lightning's default goes via /tmp)
    plugins = {} if cfg.trainer.get("plugins") else {"plugins": [AtomicCheckpointIO()]}
    trainer: L.Trainer = hydra.utils.instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers, **plugins
    )
    check_before_spawn(trainer, datamodule, callbacks)
    log.info(describe_run(trainer, getattr(datamodule, "batch_size", cfg.data.get("batch_size"))))
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)

    metric = cfg.get("optimized_metric")
    value = sweep_value(trainer, metric, cfg.paths.output_dir)
    if metric and value is None:
        log.warning("optimized_metric %r was never logged; returning None to the sweeper", metric)
    best = next(
        (cb for cb in callbacks if isinstance(cb, L.pytorch.callbacks.ModelCheckpoint)), None
    )
    if best is not None and best.best_model_path:
        log.info("best checkpoint: %s", Path(best.best_model_path))
    return value
