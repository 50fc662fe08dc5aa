"""OmegaConf resolvers used by the configs, and building lists of objects from config nodes."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf


def total_optimizer_steps(g_steps: int, n_critic: int, n_gen: int = 1) -> int:
    """Lightning's ``max_steps`` for ``g_steps`` generator iterations (-1 stays unlimited).

    Lightning counts every optimizer step in ``global_step``; one generator iteration makes
    ``n_critic`` discriminator steps and ``n_gen`` generator steps.
    """
    return -1 if g_steps is None or g_steps < 0 else g_steps * (n_critic + n_gen)


def product(*factors: int) -> int:
    """The product of the factors, for sizes one config derives from another: the study's
    Stacked MNIST batch counts PacGAN's packed samples, ``${mul:64,${model.discriminator.pack}}``
    images."""
    return math.prod(factors)


def if_multirun(value: Any, default: Any = None) -> Any:
    """``value`` inside a Hydra multirun job, ``default`` in a single run (e.g. W&B groups)."""
    multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    return value if multirun else default


def register_resolvers() -> None:
    """Register ganforge's resolvers once (safe to call repeatedly)."""
    resolvers = {
        "gan_steps": total_optimizer_steps,
        "mul": product,
        "if_multirun": if_multirun,
        "basename": lambda path: Path(path).name,
    }
    for name, fn in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


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
