"""What a researcher reads in W&B (offline, read back with ``wandb leet``): axes, best-value
summaries, learning rates, captioned grids, eval scores in the training run, sweep values."""

from __future__ import annotations

import csv
import io
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console

from ganforge import progress
from ganforge.cli import run_job
from ganforge.errors import GanforgeError
from ganforge.loggers import make_wandb_logger
from ganforge.run import train
from tests.conftest import compose_config, run_cli

WANDB = str(Path(sys.executable).parent / "wandb")
BATCH = 16
TINY = [
    "callbacks.progress=null",
    "callbacks.model_summary=null",
    "data.image_size=16",
    f"data.batch_size={BATCH}",
    "model.generator.base_width=8",
    "model.discriminator.base_width=8",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "trainer.log_every_n_steps=1",
]
FAST_METRICS = [
    "callbacks.metrics.every_n_epochs=1",
    "callbacks.metrics.num_samples=64",
    "callbacks.metrics.batch_size=64",
    "callbacks.metrics.kid_subsets=2",
]


def leet(path: Path, *flags: str) -> str:
    out = subprocess.run(
        [WANDB, "leet", "inspect", *flags, str(path)], capture_output=True, text=True, check=True
    )
    return out.stdout


def leet_summary(path: Path) -> dict[str, Any]:
    """``wandb leet inspect --summary --json``: the run's id, state and summary."""
    return json.loads(leet(path, "--summary", "--json"))


def leet_records(path: Path, kind: str) -> list[dict[str, Any]]:
    """The records of one type (``metric``, ``history``) in the run's transaction log."""
    records = [json.loads(line) for line in leet(path, "--json").splitlines() if line.strip()]
    return [r[kind] for r in records if r.get("type") == kind]


def history_rows(path: Path) -> list[dict[str, Any]]:
    """History rows as ``{key: value}`` (media fields as ``<key>.<field>``)."""
    return [rec["item"] for rec in leet_records(path, "history")]


@pytest.fixture(scope="module")
def wandb_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """A tiny conditional run, W&B offline, metrics each epoch: its folder and the value
    ``train`` returned to a sweeper."""
    run = tmp_path_factory.mktemp("dashboard_run")
    overrides = ["logger=many", "model.conditioning=concat", *TINY, *FAST_METRICS]
    overrides += ["trainer.max_epochs=2", "+trainer.limit_train_batches=3"]
    return run, run_job(train, compose_config(overrides, run))  # run_job finishes the W&B run


def only_run(run: Path) -> Path:
    """The training run's offline folder (the first; eval and sample add continuations)."""
    folders = sorted((run / "wandb").glob("offline-run-*"))
    assert len({f.name.rsplit("-", 1)[1] for f in folders}) == 1, folders  # one run id
    return folders[0]


def test_wandb_axes_are_generator_iterations_and_kimg(wandb_run) -> None:
    run, _ = wandb_run
    folder = only_run(run)
    metrics = leet_records(folder, "metric")
    glob = [m for m in metrics if m.get("glob_name") == "*"]
    assert glob[-1]["step_metric"] == "train/g_step"  # our definition replaces Lightning's
    by_name = {m["name"]: m for m in metrics if "name" in m}
    assert by_name["train/kimg"]["step_metric"] == "train/g_step"
    rows = [r for r in history_rows(folder) if "loss/d" in r]
    assert [r["train/g_step"] for r in rows] == list(range(1, 7))  # 2 epochs x 3 iterations
    # n_critic=1: every iteration shows D one batch of real images
    assert [r["train/kimg"] for r in rows] == pytest.approx([i * BATCH / 1000 for i in range(1, 7)])


def test_wandb_summary_keeps_best_metrics_and_the_best_checkpoint(wandb_run) -> None:
    run, returned = wandb_run
    folder = only_run(run)
    summary = leet_summary(folder)["summary"]
    by_name = {m["name"]: m for m in leet_records(folder, "metric") if "name" in m}
    assert by_name["metrics/fid"]["summary"] == {"min": True, "last": True}
    assert by_name["metrics/recall"]["summary"] == {"max": True, "last": True}
    fids = [r["metrics/fid"] for r in history_rows(folder) if "metrics/fid" in r]
    assert len(fids) == 2
    assert summary["metrics/fid"] == {"min": min(fids), "last": fids[-1]}
    assert summary["best/score"] == pytest.approx(min(fids)) == pytest.approx(returned)
    best = Path(summary["best/ckpt_path"])
    assert best.is_file() and best.parent == run / "checkpoints"
    assert summary["best/g_step"] == 3 * (1 + fids.index(min(fids)))
    assert summary["best/metric"] == "metrics/fid"
    for key in ("metrics/is_std", "metrics/kid_std"):
        assert key in summary


def test_learning_rates_and_axes_reach_every_logger(wandb_run) -> None:
    run, _ = wandb_run
    summary = leet_summary(only_run(run))["summary"]
    assert summary["lr/g"] == pytest.approx(8e-4) and summary["lr/d"] == pytest.approx(8e-4)
    rows = list(csv.DictReader((run / "csv" / "metrics.csv").open()))
    logged = {k for r in rows for k, v in r.items() if v}
    assert {"train/g_step", "train/kimg", "lr/g", "lr/d", "metrics/is_std"} <= logged
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard")).Reload()
    assert {"train/g_step", "train/kimg", "lr/g", "lr/d"} <= set(events.Tags()["scalars"])


def test_sample_grids_are_captioned_with_classes_and_report_attached(wandb_run) -> None:
    run, _ = wandb_run
    folder = only_run(run)
    images = [r for r in history_rows(folder) if "samples._type" in r]
    assert images and all(i["samples._type"] == "image-file" for i in images)
    assert images[-1]["samples.caption"] == (
        "fixed noise after 6 generator iterations; one row per class: "
        + ", ".join(str(c) for c in range(10))
    )
    summary = leet_summary(folder)["summary"]
    assert summary["report"]["_type"] == "html-file"
    assert (folder / "files" / summary["report"]["path"]).is_file()
    assert (folder / "files" / "report.html").is_file()


def eval_last_checkpoint(run: Path, out_dir: Path, *overrides: str):
    """``src/eval.py`` on ``run``'s last checkpoint with 64 samples, writing into ``out_dir``."""
    out = run_cli(
        [
            "src/eval.py",
            f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
            "metrics.num_samples=64",
            "metrics.batch_size=64",
            "metrics.kid_subsets=2",
            f"paths.cache_dir={run / 'cache'}",
            f"hydra.run.dir={out_dir}",
            *overrides,
        ]
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def test_eval_scores_join_the_training_run(wandb_run, tmp_path: Path) -> None:
    run, _ = wandb_run
    train_id = leet_summary(only_run(run))["run_id"]
    out = eval_last_checkpoint(run, tmp_path)
    scores = json.loads((tmp_path / "metrics.json").read_text())
    assert scores["wandb_run_id"] == train_id, out.stdout[-3000:]
    folders = sorted((run / "wandb").glob(f"offline-run-*-{train_id}"))
    assert len(folders) == 2  # the training run and its eval continuation, one id
    info = leet_summary(folders[-1])
    assert info["run_id"] == train_id
    summary = info["summary"]
    assert summary["eval/num_samples"] == 64
    assert summary["eval/fid"]["min"] == pytest.approx(scores["metrics"]["fid"])
    assert summary["eval/kid_std"] == pytest.approx(scores["metrics"]["kid_std"])
    assert summary["train/g_step"] == 6  # plotted at the checkpoint's generator iteration


def test_truncated_eval_scores_stay_out_of_the_training_run(wandb_run, tmp_path: Path) -> None:
    run, _ = wandb_run
    before = sorted((run / "wandb").glob("offline-run-*"))
    out = eval_last_checkpoint(run, tmp_path, "truncation=0.5")
    scores = json.loads((tmp_path / "metrics.json").read_text())
    assert scores["truncation"] == 0.5 and "wandb_run_id" not in scores
    assert "samples drawn with truncation=0.5" in out.stdout
    assert "not logged to W&B" in out.stdout + out.stderr
    assert sorted((run / "wandb").glob("offline-run-*")) == before


# ------------------------------------------------------------------ logger options
def test_log_model_offline_is_turned_off_with_one_line(tmp_path: Path, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="ganforge.loggers"):
        logger = make_wandb_logger(str(tmp_path), mode="offline", log_model=True)
    try:
        from lightning.pytorch.loggers import WandbLogger

        assert isinstance(logger, WandbLogger) and logger._log_model is False
    finally:
        logger.experiment.finish()
    notes = [r.message for r in caplog.records if "logger.wandb.log_model" in r.message]
    assert len(notes) == 1 and "not uploaded" in notes[0]
    assert not (tmp_path / "csv").exists()


@pytest.mark.parametrize(
    ("option", "named"),
    [({"mode": "sometimes"}, "logger.wandb.mode='sometimes'"), ({"nosuch": 1}, "nosuch")],
)
def test_wrong_wandb_option_is_an_error_not_a_csv_fallback(
    tmp_path: Path, option: dict, named: str
) -> None:
    with pytest.raises(GanforgeError, match=named):
        make_wandb_logger(str(tmp_path), **option)
    assert not (tmp_path / "csv").exists()


# ------------------------------------------------------------------ progress
def test_progress_bar_shows_counts_on_a_terminal_and_is_quiet_in_ci(monkeypatch) -> None:
    def run_bar(ci: str) -> str:
        buf = io.StringIO()
        console = Console(file=buf, force_terminal=True, width=100)
        monkeypatch.setattr(progress, "get_console", lambda: console)
        monkeypatch.setenv("CI", ci)
        with progress.progress_bar("caching real features", 30, "images") as bar:
            for _ in range(3):
                bar.advance(10)
        return buf.getvalue()

    shown = run_bar("false")
    assert "caching real features" in shown and "30/30" in shown
    assert run_bar("true") == ""


# ------------------------------------------------------------------ sweeps
def test_optuna_sweep_returns_each_jobs_best_fid(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    out = run_cli(
        [
            "src/train.py",
            "-m",
            "hparams_search=optuna",
            "hydra.sweeper.n_trials=3",
            "hydra.sweeper.sampler.n_startup_trials=3",
            "logger=csv",
            "callbacks.samples=null",
            "callbacks.report=null",
            *TINY,
            *FAST_METRICS,
            "trainer.max_epochs=3",
            "+trainer.limit_train_batches=1",
            f"hydra.sweep.dir={sweep}",
        ],
        GANFORGE_ROOT=str(tmp_path),
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert [r["status"] for r in rows] == ["COMPLETED"] * 3
    returned = []
    for row in rows:
        fids = [
            float(r["metrics/fid"])
            for r in csv.DictReader((Path(row["run_dir"]) / "csv" / "metrics.csv").open())
            if r.get("metrics/fid")
        ]
        assert len(fids) == 3
        value = json.loads((Path(row["run_dir"]) / "job_result.json").read_text())["returned"]
        assert value == pytest.approx(float(row["best"])) == pytest.approx(min(fids))
        assert float(row["final"]) == pytest.approx(fids[-1])
        returned.append(value)
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["best_value"] == pytest.approx(min(returned))


def test_interpolation_gif_joins_the_training_run(wandb_run, tmp_path: Path) -> None:
    run, _ = wandb_run
    train_id = leet_summary(only_run(run))["run_id"]
    before = set((run / "wandb").glob(f"offline-run-*-{train_id}"))
    out = run_cli(
        [
            "src/sample.py",
            f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
            "mode=interpolate",
            "interpolation.paths=2",
            "interpolation.steps=3",
            f"hydra.run.dir={tmp_path}",
        ]
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "interpolation.gif").is_file()
    (added,) = set((run / "wandb").glob(f"offline-run-*-{train_id}")) - before
    summary = leet_summary(added)["summary"]
    assert summary["interpolation"]["_type"] == "video-file"
    assert summary["train/g_step"] == 6
