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
from ganforge.resume_changes import ApplyResumeChanges, Change, check_resume_config
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
    """Fit a GAN as configured; return the best ``cfg.optimized_metric`` (for sweeps).

    The config alone was validated before this runs (``ganforge.validate``); each object is
    checked against the others as soon as it exists: data, then the networks, then a resumed
    checkpoint, then callbacks and trainer.
    """
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    if cfg.get("float32_matmul_precision"):
        torch.set_float32_matmul_precision(cfg.float32_matmul_precision)
    datamodule, module = _data_and_module(cfg)
    ckpt_path, changes = _resume(cfg, module)
    callbacks = _callbacks(cfg, datamodule, changes)
    trainer = _trainer(cfg, callbacks, datamodule)
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    return _report(cfg, trainer, callbacks)


def _data_and_module(cfg: DictConfig) -> tuple[L.LightningDataModule, L.LightningModule]:
    """The datamodule and the GAN module, each checked to fit the other."""
    log.info("building datamodule <%s>", cfg.data._target_)
    checks.check_data_path(cfg.data)
    datamodule: L.LightningDataModule = hydra.utils.instantiate(cfg.data)
    log.info("building model <%s>", cfg.model.generator._target_)
    checks.check_data_fits_model(datamodule, cfg)
    module = build_module(cfg)
    checks.check_networks_fit_data(module, datamodule)
    return datamodule, module


def _resume(cfg: DictConfig, module: L.LightningModule) -> tuple[str | None, list[Change]]:
    """The checkpoint to resume from (checked against the module and the config) and the
    changed settings to apply to it; points the W&B logger at the checkpoint's run."""
    ckpt_path = resume_path(
        cfg.get("ckpt_path"), OmegaConf.select(cfg, "callbacks.checkpoint.dirpath")
    )
    if not ckpt_path:
        return None, []
    ckpt = checks.check_resume_checkpoint(ckpt_path, module, cfg)
    changes = check_resume_config(ckpt, cfg, ckpt_path)
    if run_id := resume_wandb(cfg.get("logger"), ckpt):
        log.info("resuming W&B run %s", run_id)
    return ckpt_path, changes


def _callbacks(
    cfg: DictConfig, datamodule: L.LightningDataModule, changes: list[Change]
) -> list[L.Callback]:
    """The configured callbacks (plus the resume changes), checked against the data; removes
    the temporary files of a checkpoint write cut short by SIGKILL."""
    callbacks = _enabled(instantiate_list(cfg.get("callbacks")), cfg.trainer)
    if changes:
        callbacks.append(ApplyResumeChanges(changes))
    checks.run_preflights([datamodule, *callbacks])
    for cb in callbacks:
        if isinstance(cb, ModelCheckpoint | Preemption) and cb.dirpath:
            remove_partial_files(cb.dirpath)
    return callbacks


def _trainer(
    cfg: DictConfig, callbacks: list[L.Callback], datamodule: L.LightningDataModule
) -> L.Trainer:
    """The Trainer with its loggers; checks what only the launching process can see before
    ranks are spawned, and states in one line what will run."""
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
    return trainer


def _report(cfg: DictConfig, trainer: L.Trainer, callbacks: list[L.Callback]) -> float | None:
    """Log the best checkpoint; return the value handed to sweepers."""
    metric = cfg.get("optimized_metric")
    value = sweep_value(trainer, metric, cfg.paths.output_dir)
    if metric and value is None:
        log.warning("optimized_metric %r was never logged; returning None to the sweeper", metric)
    best = next((cb for cb in callbacks if isinstance(cb, ModelCheckpoint)), None)
    if best is not None and best.best_model_path:
        log.info("best checkpoint: %s", Path(best.best_model_path))
    return value
