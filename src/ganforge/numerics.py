"""A run's process-wide float settings, applied in every process that trains.

- ``float32_matmul_precision`` (top-level key): ``torch.set_float32_matmul_precision``; ``high``
  lets fp32 matmuls use TF32 on GPUs (``trainer=gpu`` sets it). ``null`` leaves torch's setting.
- ``flush_denormal`` (top-level key, default true): ``torch.set_flush_denormal``, so CPU
  results below float32's normal range (about 1.2e-38) become zero. x86 CPUs compute with such
  denormal numbers many times slower than with normal ones, and GAN training makes them: the
  Stacked MNIST study's arm trained 2.2 times slower on CPU without this (docs/performance.md).
  TensorFlow flushes them on CPU by default; GPUs compute them at full speed, and this setting
  does not touch them.

Both are per-process torch state that Lightning's spawn launcher does not carry into the DDP
ranks it starts (it carries the deterministic flags and RNG states only), so
:class:`ganforge.spawn.UserErrorLauncher` applies the parent's :func:`current` settings in each
rank.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Numerics:
    """The float settings one training process runs with."""

    float32_matmul_precision: str
    flush_denormal: bool

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> Numerics:
        """The settings a run config asks for; a null precision keeps torch's current one."""
        precision = cfg.get("float32_matmul_precision") or torch.get_float32_matmul_precision()
        return cls(str(precision), bool(cfg.get("flush_denormal", False)))

    def apply(self) -> None:
        """Set both in this process and remember them for the ranks it may spawn."""
        global _applied
        torch.set_float32_matmul_precision(self.float32_matmul_precision)
        torch.set_flush_denormal(self.flush_denormal)
        _applied = self


#: the settings last applied in this process (None: torch's defaults, denormals kept)
_applied: Numerics | None = None


def current() -> Numerics:
    """The settings this process runs with, for a spawned rank to apply."""
    return _applied or Numerics(torch.get_float32_matmul_precision(), flush_denormal=False)
