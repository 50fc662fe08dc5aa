"""What a training step shows in the progress bar and sends to the loggers, and the gradient
norms it logs."""

from __future__ import annotations

from collections.abc import Iterable

import lightning as L
import torch
from torch import Tensor, nn


def log_step(module: L.LightningModule, logs: dict[str, Tensor], live_bar: bool) -> None:
    """Log a step's values: every value to the loggers per step, the losses also to the bar.

    Lightning turns progress-bar values into Python numbers after every step, a host sync on a
    GPU; without a ``live_bar``, the bar shows the losses' epoch means (read once per epoch).
    """
    losses = {key: value for key, value in logs.items() if key.startswith("loss/")}
    module.log_dict(losses, prog_bar=live_bar, on_step=True)
    if not live_bar:
        epoch_means = {f"{key}_epoch": value for key, value in losses.items()}
        module.log_dict(epoch_means, prog_bar=True, on_step=False, on_epoch=True, logger=False)
    others = {key: value for key, value in logs.items() if not key.startswith("loss/")}
    module.log_dict(others, on_step=True)


def grad_norm(params: Iterable[nn.Parameter]) -> Tensor:
    """Total L2 norm of the gradients, computed on the device without a host sync."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.nn.utils.get_total_norm(grads)
