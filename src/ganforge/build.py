"""The one place a :class:`~ganforge.module.GANModule` is built: from a composed config (for
training) or from a checkpoint's stored config and weights (for the tools)."""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from ganforge.checkpoint import checkpoint_config, read_checkpoint, state_dict_mismatch
from ganforge.errors import GanforgeError
from ganforge.module import GANModule

log = logging.getLogger(__name__)


def build_module(cfg: DictConfig) -> GANModule:
    """Instantiate the GAN module (networks, loss, optimizer factories) from ``cfg``.

    D's ``norm: auto`` is BatchNorm, or LayerNorm when the loss penalises D's input gradients
    (BatchNorm makes them per-batch); an explicit ``batch`` with such a loss is switched too,
    with a warning.
    """
    loss = hydra.utils.instantiate(cfg.loss)
    model_cfg = cfg.model
    norm = model_cfg.discriminator.get("norm")
    if norm == "auto" or (norm == "batch" and loss.needs_penalty):
        if norm == "batch":
            log.warning(
                "loss %s penalises D's input gradients, which BatchNorm in D makes per-batch "
                "and wrong; using norm=layer in the discriminator instead (set "
                "model.discriminator.norm to silence this)",
                type(loss).__name__,
            )
        model_cfg = model_cfg.copy()
        with open_dict(model_cfg):
            model_cfg.discriminator.norm = "layer" if loss.needs_penalty else "batch"
    module: GANModule = hydra.utils.instantiate(model_cfg, loss=loss)
    module.run_config = OmegaConf.to_container(cfg, resolve=True)
    return module


def load_module(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[GANModule, DictConfig]:
    """The module saved in ``path``, in eval mode, with its config and training step.

    Architecture mismatches (a checkpoint edited or from another model) are reported with the
    offending parameter names.
    """
    ckpt = read_checkpoint(path)
    cfg = checkpoint_config(ckpt, path)
    if cfg.model.get("fast_path"):  # tools run a few batches: compiling them would not pay off
        cfg.model.fast_path.compile = False
    module = build_module(cfg)
    if details := state_dict_mismatch(ckpt["state_dict"], module.state_dict()):
        raise GanforgeError(
            f"checkpoint {path} does not match the architecture in its config ({details})"
        )
    module.load_state_dict(ckpt["state_dict"])
    module.on_load_checkpoint(ckpt)  # its training step, for g_step
    return module.to(map_location).eval(), cfg
