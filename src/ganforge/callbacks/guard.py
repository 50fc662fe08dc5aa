"""Divergence guard: stop a run whose losses or weights went NaN/Inf before it is checkpointed,
and warn once when a mode-coverage or diversity metric falls below a floor.

Lightning calls ``ModelCheckpoint`` callbacks after every other callback in each hook, so a
check in ``on_train_batch_end`` / ``on_train_epoch_end`` runs before any checkpoint of that step
is written: raising there leaves ``last.ckpt`` and the best checkpoints as they were.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from itertools import chain
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only
from torch import Tensor, nn

from ganforge.errors import GanforgeError

log = logging.getLogger(__name__)


class DivergenceError(GanforgeError):
    """Training produced NaN or Inf; the last good checkpoint is kept."""


def _floating(module: nn.Module) -> list[tuple[str, Tensor]]:
    return [
        (name, t.detach())
        for name, t in chain(module.named_parameters(), module.named_buffers())
        if t.is_floating_point()
    ]


def weight_norm(module: nn.Module) -> Tensor:
    """One fused L2 norm over all parameters and floating-point buffers: NaN/Inf if any is."""
    tensors = [t for _, t in _floating(module)]
    if not tensors:
        return torch.zeros(())
    return torch.nn.utils.get_total_norm(tensors, error_if_nonfinite=False)


def first_nonfinite(module: nn.Module) -> str | None:
    """Name of the first parameter or floating-point buffer of ``module`` holding NaN or Inf."""
    if torch.isfinite(weight_norm(module)):
        return None
    # the norm can overflow on huge but finite weights: only a real NaN/Inf counts
    return next((name for name, t in _floating(module) if not torch.isfinite(t).all()), None)


def network_of(metric: str) -> str:
    """The network a step metric belongs to: ``loss/d``, ``d/real`` -> discriminator."""
    return "discriminator" if metric.endswith("/d") or metric.startswith("d/") else "generator"


#: the module's networks whose weights are checked
NETWORKS = ("generator", "discriminator")


class DivergenceGuard(L.Callback):
    """Raise :class:`DivergenceError` as soon as a step's losses or the networks' weights are
    NaN/Inf, naming the generator step and the network, so no broken checkpoint is written.

    Args:
        check_every_n_steps: check interval in generator steps (one host sync per check; every
            epoch end is checked too). Keep it a divisor of any step-based checkpoint interval.
        collapse_metric: logged metric watched for mode collapse (e.g. ``metrics/modes``).
        collapse_floor: warn once when ``collapse_metric`` drops below this value; null disables.
    """

    def __init__(
        self,
        check_every_n_steps: int = 1,
        collapse_metric: str | None = "metrics/modes",
        collapse_floor: float | None = None,
    ):
        if check_every_n_steps < 1:
            raise ValueError(f"check_every_n_steps must be >= 1, got {check_every_n_steps}")
        self.check_every_n_steps = check_every_n_steps
        self.collapse_metric = collapse_metric
        self.collapse_floor = collapse_floor
        self.collapse_flagged = False

    def check(self, pl_module: L.LightningModule, outputs: Any = None) -> None:
        """Raise if a scalar the training step returned (losses, D outputs, grad norms) or a
        weight of a watched network is NaN/Inf. All values are reduced on the device and read
        back once; names are looked up only when something is not finite."""
        scalars = {
            k: v.detach().float().reshape(())
            for k, v in (outputs.items() if isinstance(outputs, Mapping) else ())
            if isinstance(v, Tensor) and v.numel() == 1
        }
        norms = [weight_norm(getattr(pl_module, name)) for name in NETWORKS]
        values = torch.stack([t.to(pl_module.device) for t in (*scalars.values(), *norms)])
        if bool(torch.isfinite(values).all()):
            return
        for metric, value in scalars.items():
            if not torch.isfinite(value):
                self._fail(pl_module, f"{metric} of the {network_of(metric)} is {value.item()}")
        for name in NETWORKS:
            bad = first_nonfinite(getattr(pl_module, name))
            if bad is not None:
                self._fail(pl_module, f"the {name} tensor {name}.{bad} is NaN or Inf")

    def _fail(self, pl_module: L.LightningModule, what: str) -> None:
        # this run's files: a run resumed in a copied folder remembers the source run's paths
        written = sorted(
            {
                str(Path(cb.dirpath) / Path(path).name)
                for cb in pl_module.trainer.checkpoint_callbacks
                for path in (cb.last_model_path, cb.best_model_path)
                if path and cb.dirpath and (Path(cb.dirpath) / Path(path).name).is_file()
            }
        )
        kept = (
            f"the checkpoints written before ({', '.join(written)}) are untouched; resume from "
            f"one with ckpt_path=<file>"
            if written
            else "no checkpoint had been written yet"
        )
        raise DivergenceError(
            f"training diverged at generator step {pl_module.g_step}: {what}. Training stopped "
            f"without checkpointing this state; {kept}. Lower the learning rates "
            "(model.optimizer_g.lr, model.optimizer_d.lr), or set model.grad_clip_norm or use a "
            "gradient-penalty loss."
        )

    @rank_zero_only
    def _flag_collapse(self, trainer: L.Trainer) -> None:
        value = trainer.callback_metrics.get(self.collapse_metric)
        if value is None or not math.isfinite(v := float(value)) or v >= self.collapse_floor:
            return
        self.collapse_flagged = True
        log.warning(
            "possible mode collapse: %s = %.4g is below the floor %.4g (generator step %d); "
            "samples are likely losing diversity",
            self.collapse_metric,
            v,
            self.collapse_floor,
            trainer.lightning_module.g_step,
        )

    def _check_collapse(self, trainer: L.Trainer) -> None:
        if self.collapse_metric and self.collapse_floor is not None and not self.collapse_flagged:
            self._flag_collapse(trainer)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if pl_module.g_step % self.check_every_n_steps == 0:
            self.check(pl_module, outputs)
        self._check_collapse(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.check(pl_module)
        self._check_collapse(trainer)

    def state_dict(self) -> dict[str, Any]:
        return {"collapse_flagged": self.collapse_flagged}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.collapse_flagged = bool(state_dict.get("collapse_flagged", False))
