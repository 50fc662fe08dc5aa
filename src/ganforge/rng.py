"""Capture and restore every random stream training draws from, for exact resume."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def capture_rng_states() -> dict[str, Any]:
    """The states of Python's, NumPy's, torch's CPU and (if present) CUDA generators.

    Only tensors and plain Python values, so checkpoints load with ``weights_only=True``.
    """
    name, keys, pos, has_gauss, cached = np.random.get_state()
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_states`; streams missing from ``states`` are left as is."""
    if "python" in states:
        random.setstate(states["python"])
    if "numpy" in states:
        name, keys, pos, has_gauss, cached = states["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "torch" in states:
        torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def fork_per_rank(rank: int) -> None:
    """Give each DDP rank its own noise stream, derived from the current (shared) one."""
    base = int(torch.randint(0, 2**62, (1,)).item())
    torch.manual_seed(base + rank)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(base + rank)
