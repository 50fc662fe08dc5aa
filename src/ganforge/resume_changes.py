"""Resuming with a changed config: what may change is applied and logged, what may not is one
clear error.

Lightning restores the optimizers' and schedulers' saved state (learning rate, betas, weight
decay, scheduler arguments) over the freshly configured ones, so without this a changed
``model.optimizer_g.lr`` would be silently ignored. :class:`ApplyResumeChanges` re-applies the
changed values once the state is restored (``on_train_start``)."""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
from omegaconf import DictConfig, OmegaConf
from torch.optim import Optimizer

from ganforge.checkpoint import checkpoint_config
from ganforge.errors import GanforgeError

log = logging.getLogger(__name__)

#: config keys (and their subkeys) that cannot change on resume: the state would not fit
FIXED = (
    "model._target_",
    "model.generator",
    "model.discriminator",
    "model.conditioning",
    "model.latent_prior",
    "model.scheduler_g._target_",
    "model.scheduler_d._target_",
    "model.optimizer_g._target_",
    "model.optimizer_d._target_",
    "data",
    "loss._target_",
    "loss.n_critic",
    "loss.n_gen",
    "trainer.devices",
    "trainer.num_nodes",
)
#: keys that may change freely on resume: data loading speed, not the data
FREE_DATA = ("data.num_workers", "data.seed")
#: keys that differ between any two runs (folders, names) or mirror another key
IGNORED = ("paths", "hydra", "ckpt_path", "task_name", "tags", "trainer.strategy")
#: optimizer / scheduler config nodes of each network
OPTIMIZERS = {"generator": "model.optimizer_g", "discriminator": "model.optimizer_d"}
SCHEDULERS = {"generator": "model.scheduler_g", "discriminator": "model.scheduler_d"}

Change = tuple[str, Any, Any]


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(node, dict) or not node:
        return {prefix: node}
    out: dict[str, Any] = {}
    for key, value in node.items():
        out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _under(key: str, prefixes: tuple[str, ...]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def config_changes(saved: dict[str, Any], current: dict[str, Any]) -> list[Change]:
    """``(key, checkpoint value, current value)`` for every leaf that differs, run folders and
    names left out (a resumed run may live in another folder)."""
    old_dir = str(_flatten(saved).get("paths.output_dir", "\0"))
    flat_old, flat_new = _flatten(saved), _flatten(current)
    changes = []
    for key in sorted(set(flat_old) | set(flat_new)):
        old, new = flat_old.get(key), flat_new.get(key)
        if old == new or _under(key, IGNORED):
            continue
        if isinstance(old, str) and old.startswith(old_dir):
            continue  # a file or folder inside the old run folder
        changes.append((key, old, new))
    return changes


def check_resume_config(ckpt: dict[str, Any], cfg: DictConfig, path: str) -> list[Change]:
    """Compare the checkpoint's config with ``cfg``: a :class:`GanforgeError` naming every
    change that cannot be resumed; otherwise the changes that can (applied by
    :class:`ApplyResumeChanges`)."""
    if ckpt.get("ganforge_config") is None:
        log.warning("%s carries no ganforge_config; config changes cannot be checked", path)
        return []
    saved = OmegaConf.to_container(checkpoint_config(ckpt, path))
    current = OmegaConf.to_container(cfg, resolve=True)
    changes = config_changes(saved, current)
    fixed = [c for c in changes if _under(c[0], FIXED) and not _under(c[0], FREE_DATA)]
    if fixed:
        listed = ", ".join(f"{k}: {old} -> {new}" for k, old, new in fixed)
        raise GanforgeError(
            f"ckpt_path={path} cannot resume with a changed {listed} (architecture, data, batch "
            "size, loss, n_critic, n_gen and devices must stay as the checkpoint was trained); "
            "undo these overrides, or start a new run without ckpt_path."
        )
    return changes


def _optimizer_of(trainer: L.Trainer, net: Any) -> Optimizer | None:
    params = {id(p) for p in net.parameters()}
    return next(
        (
            o
            for o in trainer.optimizers
            if any(id(p) in params for p in o.param_groups[0]["params"])
        ),
        None,
    )


def _schedulers_of(trainer: L.Trainer, optimizer: Optimizer) -> list[Any]:
    return [c.scheduler for c in trainer.lr_scheduler_configs if c.scheduler.optimizer is optimizer]


def _apply_optimizer(opt: Optimizer, schedulers: list[Any], name: str, old: Any, new: Any) -> None:
    value = tuple(new) if isinstance(new, list) else new
    for group in opt.param_groups:
        if name == "lr" and schedulers and old:
            group["lr"] = group["lr"] * new / old  # keep the schedule's progress
            group["initial_lr"] = new
        else:
            group[name] = value
    opt.defaults[name] = value
    if name == "lr":
        for sch in schedulers:
            sch.base_lrs = [new] * len(opt.param_groups)


class ApplyResumeChanges(L.Callback):
    """Re-apply the hyperparameters that changed since the checkpoint was written, after
    Lightning restored the optimizers and schedulers from it, and log one line per change."""

    def __init__(self, changes: list[Change]):
        self.changes = changes

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for key, old, new in self.changes:
            log.info(
                "resume: %s changed from %s to %s; %s",
                key,
                old,
                new,
                self._apply(trainer, pl_module, key, old, new),
            )

    def _apply(self, trainer: L.Trainer, pl_module: Any, key: str, old: Any, new: Any) -> str:
        for net, node in OPTIMIZERS.items():
            if key.startswith(node + "."):
                opt = _optimizer_of(trainer, getattr(pl_module, net))
                name = key[len(node) + 1 :]
                if opt is None or name not in opt.defaults:
                    return "not an argument of the restored optimizer, ignored"
                _apply_optimizer(opt, _schedulers_of(trainer, opt), name, old, new)
                return f"the {net}'s optimizer now uses the new value"
        for net, node in SCHEDULERS.items():
            if key.startswith(node + "."):
                opt = _optimizer_of(trainer, getattr(pl_module, net))
                name = key[len(node) + 1 :]
                schedulers = _schedulers_of(trainer, opt) if opt is not None else []
                for sch in schedulers:
                    if hasattr(sch, name):
                        setattr(sch, name, new)
                if not schedulers:
                    return "the new scheduler starts from its initial state"
                return f"the {net}'s scheduler now uses the new value"
        return "the new value is used"
