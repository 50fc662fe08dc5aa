"""Metrics in real runs: the training callback and ``src/eval.py``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import lightning as L
import pytest
import torch

from ganforge.metrics.inception import WEIGHTS_FILE
from ganforge.run import train
from tests.conftest import compose_config, run_cli

TINY = [
    "logger=csv",
    "callbacks.progress=null",
    "callbacks.model_summary=null",
    "data.image_size=16",
    "data.batch_size=16",
    "model.generator.base_width=8",
    "model.discriminator.base_width=8",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "trainer.max_epochs=2",
    "+trainer.limit_train_batches=2",
]
FAST_METRICS = [
    "callbacks.metrics.every_n_epochs=1",
    "callbacks.metrics.num_samples=100",
    "callbacks.metrics.batch_size=50",
    "callbacks.metrics.kid_subsets=2",
]


class SaveGenerator(L.Callback):
    """Keep the generator's final weights (last.ckpt is only rewritten when FID improves)."""

    def __init__(self, path: str):
        self.path = path

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        torch.save(pl_module.generator.state_dict(), self.path)


def _final_weights(run: Path, *overrides: str) -> dict[str, torch.Tensor]:
    keep = [
        f"+callbacks.final._target_={__name__}.SaveGenerator",
        f"+callbacks.final.path={run / 'generator.pt'}",
    ]
    train(compose_config([*TINY, *overrides, *keep], run))
    return torch.load(run / "generator.pt")


@pytest.fixture(scope="module")
def metrics_run(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A tiny run with metrics every epoch: its folder and final generator weights."""
    run = tmp_path_factory.mktemp("metrics_run")
    return run, _final_weights(run, *FAST_METRICS)


def test_metrics_are_logged_without_touching_training(metrics_run, tmp_path: Path) -> None:
    with_metrics, trained = metrics_run
    reference = _final_weights(tmp_path / "without", "callbacks.metrics=null")

    rows = list(csv.DictReader((with_metrics / "csv" / "metrics.csv").open()))
    fids = [float(r["metrics/fid"]) for r in rows if r.get("metrics/fid")]
    assert len(fids) == 2 and all(f > 0 for f in fids)
    logged = {k for r in rows for k, v in r.items() if v and k.startswith("metrics/")}
    names = ("fid", "is", "is_std", "kid", "kid_std", "precision", "recall")
    assert logged == {f"metrics/{k}" for k in names} | {
        "metrics/modes",
        "metrics/kl_uniform",
    }
    assert list((with_metrics / "checkpoints").glob("best-epoch*.ckpt"))
    state = torch.load(with_metrics / "checkpoints" / "last.ckpt", weights_only=False)
    prefixes = {k.split(".")[0] for k in state["state_dict"]}
    assert prefixes <= {"generator", "discriminator", "g_ema", "fixed_noise", "fixed_labels"}

    assert trained.keys() == reference.keys()
    for name, value in trained.items():
        assert torch.equal(value, reference[name]), name


def test_missing_inception_weights_stop_the_run_before_training(tmp_path: Path) -> None:
    out = run_cli(
        [
            "src/train.py",
            *TINY,
            "callbacks.metrics.feature_space=inception",
            "callbacks.metrics.download=false",
            f"hydra.run.dir={tmp_path}/run",
        ],
        TORCH_HOME=str(tmp_path / "torch"),
        GANFORGE_CACHE=str(tmp_path / "cache"),
    )
    assert out.returncode == 1, out.stderr[-2000:]
    assert WEIGHTS_FILE in out.stderr
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in out.stderr
    assert "Traceback" not in out.stderr and "urllib" not in out.stderr
    assert not (tmp_path / "run" / "checkpoints" / "last.ckpt").exists()


def test_eval_cli_prints_a_table_and_writes_json(metrics_run, tmp_path: Path) -> None:
    (best,) = (metrics_run[0] / "checkpoints").glob("best-epoch*.ckpt")
    out = run_cli(
        [
            "src/eval.py",
            f"ckpt_path={best}",
            f"hydra.run.dir={tmp_path}/eval",
            "metrics.num_samples=200",
            "metrics.batch_size=100",
            "metrics.kid_subsets=5",
        ],
        GANFORGE_CACHE=str(tmp_path / "cache"),
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert result["feature_space"] == "digits" and result["num_samples"] == 200
    for name in ("fid", "is", "kid", "precision", "recall", "modes", "kl_uniform"):
        assert f"{name} " in out.stdout
    assert f"{result['metrics']['fid']:.6g}" in out.stdout
    assert list((tmp_path / "cache" / "real_stats").glob("mnist5k_seed42-train-16px1c-*.pt"))
