"""Running one training job of a study in-process: compose ``train.yaml`` with overrides,
fit, and hand back the trained module (studies score it themselves)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from omegaconf import DictConfig

from ganforge.build import build_module
from ganforge.module import GANModule


class History(L.Callback):
    """Records chosen scalars of every training step (a study's training curves)."""

    def __init__(self, keys: Sequence[str]):
        self.keys = tuple(keys)
        self.values: dict[str, list[float]] = {k: [] for k in self.keys}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        for k in self.keys:
            self.values[k].append(float(outputs[k]))


@dataclass
class Job:
    """A finished study job: its config, module, datamodule, wall time, step history and
    the device it trained on (Lightning hands the module back on the CPU; scoring thousands
    of samples there would cost a GPU study more than its training)."""

    cfg: DictConfig
    module: GANModule
    datamodule: L.LightningDataModule
    wall_s: float
    history: dict[str, list[float]] = field(default_factory=dict)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))


def compose_train(overrides: Sequence[str], output_dir: Path) -> DictConfig:
    """``train.yaml`` composed with ``overrides`` (inside a running Hydra app), writing into
    ``output_dir``; loggers, callbacks and the progress bar are off unless overridden."""
    base = [
        "logger=none",
        "callbacks=none",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "++trainer.enable_checkpointing=false",
        "trainer.max_epochs=-1",
        f"paths.output_dir={output_dir}",
    ]
    return hydra.compose(config_name="train", overrides=[*base, *overrides])


def fit(cfg: DictConfig, history: Sequence[str] = ()) -> Job:
    """Train the GAN ``cfg`` describes, with Lightning, and return the trained job."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = hydra.utils.instantiate(cfg.data)
    module = build_module(cfg)
    recorder = History(history)
    trainer: L.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=[recorder], logger=False)
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    wall_s = time.perf_counter() - start
    return Job(cfg, module, datamodule, wall_s, recorder.values, trainer.strategy.root_device)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and (population) standard deviation of ``values``; NaNs for none."""
    if not values:
        return float("nan"), float("nan")
    m = sum(values) / len(values)
    return m, (sum((v - m) ** 2 for v in values) / len(values)) ** 0.5


def machine() -> dict[str, Any]:
    """What the table's header says about where and when it was measured."""
    import os
    import platform
    from datetime import UTC, datetime

    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads{gpu}",
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
