"""OmegaConf resolvers used by the configs, and building lists of objects from config nodes."""

from __future__ import annotations

from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf


def total_optimizer_steps(g_steps: int, n_critic: int) -> int:
    """Lightning's ``max_steps`` for ``g_steps`` generator iterations (-1 stays unlimited).

    Lightning counts every optimizer step in ``global_step``; one generator iteration makes
    ``n_critic`` discriminator steps and one generator step.
    """
    return -1 if g_steps is None or g_steps < 0 else g_steps * (n_critic + 1)


def register_resolvers() -> None:
    """Register ganforge's resolvers once (safe to call repeatedly)."""
    if not OmegaConf.has_resolver("gan_steps"):
        OmegaConf.register_new_resolver("gan_steps", total_optimizer_steps)


def instantiate_list(node: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a mapping of ``_target_`` configs, skipping null entries."""
    if not node:
        return []
    return [
        hydra.utils.instantiate(conf)
        for conf in node.values()
        if isinstance(conf, DictConfig) and "_target_" in conf
    ]


register_resolvers()
