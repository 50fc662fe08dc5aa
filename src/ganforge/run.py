"""The training job: build everything from a composed config, fit, and report the sweep metric."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from ganforge.config import instantiate_list
from ganforge.errors import GanforgeError
from ganforge.module import GANModule

log = logging.getLogger(__name__)


def build_module(cfg: DictConfig) -> GANModule:
    """Instantiate the GAN module (networks, loss, optimizer factories) from ``cfg``."""
    loss = hydra.utils.instantiate(cfg.loss)
    model_cfg = cfg.model
    if loss.needs_penalty and model_cfg.discriminator.get("norm") == "batch":
        log.warning(
            "loss %s penalises D's input gradients, which BatchNorm in D makes per-batch and "
            "wrong; using norm=layer in the discriminator instead (set "
            "model.discriminator.norm to silence this)",
            type(loss).__name__,
        )
        model_cfg = model_cfg.copy()
        with open_dict(model_cfg):
            model_cfg.discriminator.norm = "layer"
    module: GANModule = hydra.utils.instantiate(model_cfg, loss=loss)
    module.run_config = OmegaConf.to_container(cfg, resolve=True)
    return module


def _check_data_fits_model(datamodule: Any, cfg: DictConfig) -> None:
    conditioning = cfg.model.get("conditioning", "none")
    if conditioning != "none" and not getattr(datamodule, "num_classes", None):
        raise GanforgeError(
            f"model.conditioning={conditioning} needs labelled data, but data "
            f"{getattr(datamodule, 'name', type(datamodule).__name__)!r} has no labels "
            "(num_classes is null). Use a labelled dataset or model.conditioning=none."
        )


def train(cfg: DictConfig) -> float | None:
    """Fit a GAN as configured; return the value of ``cfg.optimized_metric`` (for sweeps)."""
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    if cfg.get("float32_matmul_precision"):
        torch.set_float32_matmul_precision(cfg.float32_matmul_precision)

    log.info("building datamodule <%s>", cfg.data._target_)
    datamodule: L.LightningDataModule = hydra.utils.instantiate(cfg.data)
    log.info("building model <%s>", cfg.model.generator._target_)
    _check_data_fits_model(datamodule, cfg)
    module = build_module(cfg)

    callbacks = instantiate_list(cfg.get("callbacks"))
    loggers = instantiate_list(cfg.get("logger"))
    trainer: L.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))

    metric = cfg.get("optimized_metric")
    value = trainer.callback_metrics.get(metric) if metric else None
    if metric and value is None:
        log.warning("optimized_metric %r was never logged; returning None to the sweeper", metric)
    best = next(
        (cb for cb in callbacks if isinstance(cb, L.pytorch.callbacks.ModelCheckpoint)), None
    )
    if best is not None and best.best_model_path:
        log.info("best checkpoint: %s", Path(best.best_model_path))
    return None if value is None else float(value)
