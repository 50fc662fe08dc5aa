"""Shared helpers of the training benchmarks: composing the real configs, timing, reporting.

Every benchmark composes ``conf/train.yaml`` exactly as ``python src/train.py`` does (Hydra
compose API, plus the Hydra runtime values the configs interpolate), times steady-state
training steps with :class:`StepTimer`, prints a table and writes a JSON file under
``benchmarks/results/`` that records the machine, versions and load next to the numbers.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import platform
import statistics
import subprocess
import tempfile
import time
import warnings
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from ganforge.config import register_resolvers

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
register_resolvers()


def compose_config(overrides: Sequence[str], output_dir: Path | None = None) -> DictConfig:
    """``conf/train.yaml`` composed with ``overrides``, its outputs going to ``output_dir``."""
    output_dir = output_dir or Path(tempfile.mkdtemp(prefix="ganforge-bench-"))
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=list(overrides), return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.hydra.runtime.output_dir = str(output_dir)
        cfg.hydra.job.num = 0
    HydraConfig().set_config(cfg)
    return cfg


class StepTimer(L.Callback):
    """Wall-clock time at the start of every training batch (a full loop iteration apart).

    The span from batch ``i``'s start to batch ``i + 1``'s start holds everything the loop does
    for step ``i``: fetching the batch, the training step, callbacks, logging. Instances add
    themselves to :attr:`instances`, so a benchmark can read a timer that Hydra built from a
    ``_target_`` config inside ``ganforge.run.train``.
    """

    instances: ClassVar[list[StepTimer]] = []

    def __init__(self):
        self.starts: list[float] = []
        StepTimer.instances.append(self)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.starts.append(time.perf_counter())

    def step_seconds(self, warmup: int, steps: int) -> list[float]:
        """Wall time of each of ``steps`` iterations after ``warmup`` untimed ones."""
        if len(self.starts) < warmup + steps + 1:
            raise RuntimeError(f"timer saw {len(self.starts)} batches, need {warmup + steps + 1}")
        times = self.starts[warmup : warmup + steps + 1]
        return [b - a for a, b in itertools.pairwise(times)]


def timer_callback_config() -> dict[str, str]:
    """The ``callbacks.<name>`` node that puts a :class:`StepTimer` into a composed run."""
    return {"_target_": f"{StepTimer.__module__}.StepTimer"}


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def load() -> str:
    """The 1, 5 and 15 minute load averages, as ``uptime`` shows them."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def environment() -> dict[str, Any]:
    """Machine, versions and load, stored next to every result."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": L.__version__,
        "git_commit": commit,
        "load_average": load(),
    }


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    """A plain-text table of ``rows`` (floats to 3 significant digits)."""

    def fmt(v: Any) -> str:
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    cells = [[fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def write_json(path: Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` plus the environment to ``path`` (folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"environment": environment(), **payload}, indent=2) + "\n")
    print(f"wrote {path}")
    return path


def quiet_run(threads: int | None) -> None:
    """Benchmark process set-up: torch threads (None keeps all) and no library chatter."""
    if threads:
        torch.set_num_threads(threads)
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("ganforge").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
