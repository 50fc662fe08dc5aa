"""Shared fixtures: compose the real configs the way Hydra does, run jobs in temp folders."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from ganforge.config import register_resolvers

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

#: the smallest DCGAN the configs build (16x16 images, 8 base channels): seconds on 2 CPU cores
TINY_DCGAN = [
    "data.image_size=16",
    "data.batch_size=8",
    "model.generator.base_width=8",
    "model.discriminator.base_width=8",
    "model.generator.latent_dim=16",
    "model.num_fixed_samples=10",
]
#: the Stacked MNIST study arm's network options (conf/study/mode_collapse.yaml): the
#: DCGAN-TensorFlow layout, uniform z and that code's pixel ranges (G's tanh centred on black,
#: D reading [0, 1]) on that code's 28x28 images (an odd 7x7 side on the way down to 2x2)
TF_DCGAN = [
    *(
        f"model.{net}.{key}"
        for net in ("generator", "discriminator")
        for key in ("kernel_size=5", "bottom_size=2")
    ),
    "model.latent_prior=uniform",
    "model.generator.output_range=[-3,1]",
    "model.discriminator.input_range=[0,1]",
    "data.image_size=28",
]
#: no progress bar, summary, sample grids, metrics or report: for runs that test something else
QUIET_RUN = [
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "callbacks.samples.every_n_steps=0",
    "callbacks.metrics=null",
    "callbacks.report=null",
]

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("WANDB_DISABLE_GIT", "true")
register_resolvers()


def compose_config(overrides: list[str], output_dir: Path | None = None) -> DictConfig:
    """Compose ``conf/train.yaml`` with ``overrides``, writing outputs to ``output_dir``."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    if output_dir is not None:
        with open_dict(cfg):
            cfg.paths.output_dir = str(output_dir)
            cfg.paths.cache_dir = str(output_dir / "cache")
            cfg.hydra.runtime.output_dir = str(output_dir)
            cfg.hydra.job.num = 0
    HydraConfig().set_config(cfg)
    return cfg


@pytest.fixture
def make_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """Compose the training config into ``tmp_path`` (CSV logging, no progress bar)."""

    def make(*overrides: str) -> DictConfig:
        base = ["logger=csv", "callbacks.progress=null", "callbacks.model_summary=null"]
        return compose_config([*base, *overrides], tmp_path)

    return make


def run_cli(args: list[str], cwd: Path = ROOT, timeout: float = 600, **env: str):
    """Run ``python <args>`` as a user would, capturing output."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def sigterm_once_training(args: list[str], run_dir: Path, **env: str) -> tuple[int, str]:
    """Run ``python <args>`` until its second sample grid exists in ``run_dir`` (training is
    under way), send it SIGTERM as a scheduler would; return its exit status and output."""
    proc = subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not (run_dir / "samples" / "step_0000002.png").exists():
            assert proc.poll() is None, proc.communicate()[0][-3000:]
            assert time.monotonic() < deadline, "training never started"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=180)
    finally:
        proc.kill()
    return proc.returncode, output
