"""What a training step shows in the progress bar and sends to the loggers."""

from __future__ import annotations

import lightning as L
from torch import Tensor


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
