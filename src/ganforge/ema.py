"""The generator's exponential moving average update, in a form that pickles.

``torch.optim.swa_utils.get_ema_multi_avg_fn`` returns a closure, which the spawn launcher of a
multi-process run cannot pickle; :class:`EMAUpdate` is the same update as a class instance.
"""

from __future__ import annotations

import torch
from torch import Tensor


class EMAUpdate:
    """``ema = decay * ema + (1 - decay) * current`` for lists of tensors, as an
    ``AveragedModel(multi_avg_fn=...)``: torch's ``get_ema_multi_avg_fn``, picklable."""

    def __init__(self, decay: float):
        self.decay = decay

    @torch.no_grad()
    def __call__(self, ema: list[Tensor], current: list[Tensor], num_averaged: Tensor) -> None:
        if torch.is_floating_point(ema[0]) or torch.is_complex(ema[0]):
            torch._foreach_lerp_(ema, current, 1 - self.decay)
        else:  # foreach lerp handles float and complex tensors only
            for e, c in zip(ema, current, strict=True):
                e.copy_(e * self.decay + c * (1 - self.decay))
