"""A table of a multirun's jobs: ``summary.csv`` and ``summary.md`` in the multirun folder.

A training job hands the sweeper the **best** value of ``optimized_metric`` its checkpoint
callback saw (the checkpoint the user keeps), not the last one, and writes both to
``<job>/optimized_metric.json`` (:func:`sweep_value`). Each job records its own result
(overrides, status, final and best value) in ``<job>/job_result.json`` when it ends,
on the machine that ran it (so this works with the submitit launchers too). When the sweep ends,
the process that launched it gathers those files into one row per job. A job that crashed or
never logged the metric gets empty cells, not a failed summary.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

RESULT_FILE = "job_result.json"
#: the final and best value of ``optimized_metric`` a training job saw
METRIC_FILE = "optimized_metric.json"
COLUMNS = ("job", "overrides", "status", "metric", "final", "best", "run_dir")


def best_checkpoint_score(checkpoint: Path) -> float | None:
    """The best monitored value a :class:`ModelCheckpoint` recorded in ``checkpoint``, if any."""
    if not checkpoint.is_file():
        return None
    try:
        ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False, mmap=True)
    except (OSError, RuntimeError) as err:
        log.warning("could not read %s for the sweep summary: %s", checkpoint, err)
        return None
    for key, state in ckpt.get("callbacks", {}).items():
        if key.startswith("ModelCheckpoint") and state.get("best_model_score") is not None:
            return _number(state["best_model_score"])
    return None


def _number(value: Any) -> float | None:
    """``value`` as a finite float, or None (missing, non-numeric or NaN)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def sweep_value(trainer: L.Trainer, metric: str | None, out_dir: str | Path) -> float | None:
    """The value a sweeper gets for ``metric``: the best one the checkpoint callback that
    monitors it kept (its ``best_model_score``), else the last logged one; write both to
    ``out_dir/optimized_metric.json`` for the sweep summary (rank 0)."""
    if not metric:
        return None
    final = _number(trainer.callback_metrics.get(metric))
    best = next(
        (
            _number(cb.best_model_score)
            for cb in trainer.checkpoint_callbacks
            if isinstance(cb, ModelCheckpoint) and cb.monitor == metric
        ),
        None,
    )
    if trainer.is_global_zero:
        record = {"metric": metric, "final": final, "best": best}
        Path(out_dir, METRIC_FILE).write_text(json.dumps(record, indent=1))
    return best if best is not None else final


def job_result(config: DictConfig, job_return: JobReturn) -> dict[str, Any]:
    """The summary row of one finished job (plus ``returned``, the value the sweeper got, in
    ``job_result.json``): final and best value from the job's
    ``optimized_metric.json``, or for a job without one (not a training job, or one that
    crashed) its return value and its last checkpoint's best score."""
    completed = job_return.status == JobStatus.COMPLETED
    run_dir = Path(config.hydra.runtime.output_dir)
    values = {}
    if completed and (run_dir / METRIC_FILE).is_file():
        values = json.loads((run_dir / METRIC_FILE).read_text())
    last = OmegaConf.select(config, "callbacks.checkpoint.dirpath", default=None)
    if "final" not in values:
        values["final"] = _number(job_return.return_value) if completed else None
    if values.get("best") is None:
        values["best"] = best_checkpoint_score(Path(last) / "last.ckpt") if last else None
    return {
        "job": config.hydra.job.num,
        "overrides": " ".join(job_return.overrides or []),
        "status": job_return.status.name,
        "metric": config.get("optimized_metric"),
        "final": values["final"],
        "best": values["best"],
        "returned": _number(job_return.return_value) if completed else None,
        "run_dir": str(run_dir),
    }


def read_results(sweep_dir: Path) -> list[dict[str, Any]]:
    """Every job result found under ``sweep_dir``, in job order."""
    rows = [json.loads(p.read_text()) for p in sweep_dir.glob(f"*/{RESULT_FILE}")]
    return sorted(rows, key=lambda row: row["job"])


def write_summary(rows: list[dict[str, Any]], sweep_dir: Path) -> None:
    """Write ``rows`` as ``summary.csv`` and a Markdown table ``summary.md`` in ``sweep_dir``."""
    with (sweep_dir / "summary.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)

    def cell(value: Any) -> str:
        text = "" if value is None else f"{value:.6g}" if isinstance(value, float) else str(value)
        return text.replace("|", "\\|")

    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in COLUMNS) + " |" for row in rows]
    (sweep_dir / "summary.md").write_text("\n".join(lines) + "\n")


class SweepSummary(Callback):
    """Hydra callback: each multirun job saves its result; the sweep writes the summary."""

    @rank_zero_only
    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if config.hydra.mode != RunMode.MULTIRUN:
            return
        result = job_result(config, job_return)
        Path(result["run_dir"], RESULT_FILE).write_text(json.dumps(result, indent=1))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        rows = read_results(sweep_dir)
        write_summary(rows, sweep_dir)
        log.info("sweep summary of %d job(s): %s", len(rows), sweep_dir / "summary.md")
