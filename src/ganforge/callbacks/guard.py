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
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only
from torch import Tensor, nn

from ganforge.errors import GanforgeError

log = logging.getLogger(__name__)


class DivergenceError(GanforgeError):
    """Training produced NaN or Inf; the last good checkpoint is kept."""


def first_nonfinite(module: nn.Module) -> str | None:
    """Name of the first parameter or floating-point buffer of ``module`` holding NaN or Inf.

    One fused norm over all tensors decides (a single host sync); names are looked up only
    when that norm is not finite.
    """
    named = [
        (name, t.detach())
        for name, t in chain(module.named_parameters(), module.named_buffers())
        if t.is_floating_point()
    ]
    if not named:
        return None
    total = torch.nn.utils.get_total_norm([t for _, t in named], error_if_nonfinite=False)
    if torch.isfinite(total):
        return None
    # the norm can overflow on huge but finite weights: only a real NaN/Inf counts
    return next((name for name, t in named if not torch.isfinite(t).all()), None)


def network_of(metric: str) -> str:
    """The network a step metric belongs to: ``loss/d``, ``d/real`` -> discriminator."""
    return "discriminator" if metric.endswith("/d") or metric.startswith("d/") else "generator"


class DivergenceGuard(L.Callback):
    """Raise :class:`DivergenceError` as soon as a step's losses or the networks' weights are
    NaN/Inf, naming the generator step and the network, so no broken checkpoint is written.

    Args:
        networks: attribute names of the module's networks to check.
        check_every_n_steps: weight check interval in generator steps (losses are checked every
            step; the check is also made at every epoch end, before checkpoints are saved).
        collapse_metric: logged metric watched for mode collapse (e.g. ``metrics/modes``).
        collapse_floor: warn once when ``collapse_metric`` drops below this value; null disables.
    """

    def __init__(
        self,
        networks: tuple[str, ...] = ("generator", "discriminator"),
        check_every_n_steps: int = 1,
        collapse_metric: str | None = "metrics/modes",
        collapse_floor: float | None = None,
    ):
        if check_every_n_steps < 1:
            raise ValueError(f"check_every_n_steps must be >= 1, got {check_every_n_steps}")
        self.networks = tuple(networks)
        self.check_every_n_steps = check_every_n_steps
        self.collapse_metric = collapse_metric
        self.collapse_floor = collapse_floor
        self.collapse_flagged = False

    def check_weights(self, pl_module: L.LightningModule) -> None:
        """Raise if any watched network holds a NaN/Inf parameter or buffer."""
        for name in self.networks:
            bad = first_nonfinite(getattr(pl_module, name))
            if bad is not None:
                self._fail(pl_module, f"the {name} tensor {name}.{bad} is NaN or Inf")

    def check_outputs(self, pl_module: L.LightningModule, outputs: Any) -> None:
        """Raise if a scalar the training step returned (losses, grad norms) is NaN/Inf."""
        if not isinstance(outputs, Mapping):
            return
        values = {k: v for k, v in outputs.items() if isinstance(v, Tensor) and v.numel() == 1}
        if not values:
            return
        finite = torch.isfinite(torch.stack([v.float().reshape(()) for v in values.values()]))
        if bool(finite.all()):
            return
        pairs = zip(values.items(), finite, strict=True)
        metric, value = next(item for item, ok in pairs if not ok)
        self._fail(pl_module, f"{metric} of the {network_of(metric)} is {value.item()}")

    def _fail(self, pl_module: L.LightningModule, what: str) -> None:
        ckpt = getattr(pl_module.trainer.checkpoint_callback, "last_model_path", "")
        kept = (
            f"the last good checkpoint {ckpt} is untouched; resume from it with ckpt_path={ckpt}"
            if ckpt
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
        self.check_outputs(pl_module, outputs)
        if pl_module.g_step % self.check_every_n_steps == 0:
            self.check_weights(pl_module)
        self._check_collapse(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.check_weights(pl_module)
        self._check_collapse(trainer)

    def on_validation_end(self, trainer, pl_module) -> None:
        self._check_collapse(trainer)

    def state_dict(self) -> dict[str, Any]:
        return {"collapse_flagged": self.collapse_flagged}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.collapse_flagged = bool(state_dict.get("collapse_flagged", False))
