"""Assemble a run's report from its folder: scalars from ``csv/metrics.csv``, sample grids from
``samples/``, the configuration from ``.hydra/config.yaml`` (or the one given)."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf
from PIL import Image

from ganforge.errors import GanforgeError
from ganforge.report.figures import (
    CURVES,
    METRIC_TITLES,
    Picture,
    curve_figure,
    metric_keys,
    metrics_figure,
    overview_figure,
    pictures_figure,
)
from ganforge.report.history import Series, find_metrics_csv, read_history
from ganforge.report.page import PageFigure, render_page

log = logging.getLogger(__name__)

STEP_GRID = re.compile(r"step_(\d+)\.png$")

#: configuration entries shown at the top of the report, when the run has them
CONFIG_KEYS = (
    "model.generator._target_",
    "model.discriminator._target_",
    "model.conditioning",
    "loss._target_",
    "data._target_",
    "data.image_size",
    "data.batch_size",
    "seed",
    "max_g_steps",
    "trainer.max_epochs",
)


@dataclass(frozen=True)
class ReportFiles:
    """Where a report was written."""

    html: Path
    png: Path


def sample_grids(samples_dir: Path) -> tuple[list[tuple[int, Path]], Path | None]:
    """The ``step_*.png`` grids sorted by step, and ``final.png`` when it exists."""
    steps = []
    for path in samples_dir.glob("step_*.png"):
        match = STEP_GRID.search(path.name)
        if match:
            steps.append((int(match.group(1)), path))
    final = samples_dir / "final.png"
    return sorted(steps), final if final.is_file() else None


def spread(items: Sequence[Any], k: int) -> list[Any]:
    """Up to ``k`` items evenly spaced from first to last."""
    if len(items) <= k:
        return list(items)
    picks = np.unique(np.linspace(0, len(items) - 1, k).round().astype(int))
    return [items[i] for i in picks]


def read_picture(path: Path) -> np.ndarray:
    """An image file as an RGB array, naming the file if it cannot be read."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except OSError as err:
        raise GanforgeError(f"cannot read the sample grid {path}: {err}") from None


def run_config(run_dir: Path) -> dict[str, Any] | None:
    """The composed config Hydra saved for the run, if any."""
    path = run_dir / ".hydra" / "config.yaml"
    if not path.is_file():
        return None
    try:
        return OmegaConf.to_container(OmegaConf.load(path))
    except Exception as err:
        raise GanforgeError(f"cannot read the run config {path}: {err}") from None


def config_rows(config: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """The :data:`CONFIG_KEYS` entries of ``config`` that are set (interpolations unresolved)."""
    if not config:
        return []
    cfg = OmegaConf.create(dict(config))
    rows = []
    for key in CONFIG_KEYS:
        value = OmegaConf.select(cfg, key, default=None, throw_on_resolution_failure=False)
        if value is not None:
            rows.append((key, str(value)))
    return rows


def last_values(history: dict[str, Series]) -> list[tuple[str, str]]:
    """The final value of every scalar, with the step it was logged at."""
    return [
        (key, f"{values[-1]:.4g} (step {steps[-1]})")
        for key, (steps, values) in sorted(history.items())
    ]


def page_figures(
    history: dict[str, Series],
    pictures: Sequence[Picture],
    final_png: bytes | None,
) -> list[PageFigure]:
    """The page's figures, in reading order."""
    figures = [PageFigure(p.id, p.title, curve_figure(history, p), p.caption) for p in CURVES]
    metrics = metric_keys(history)
    figures.append(
        PageFigure(
            "metrics",
            "Metrics",
            metrics_figure(history),
            ", ".join(metrics) if metrics else f"none of {', '.join(METRIC_TITLES)} was logged",
        )
    )
    figures.append(
        PageFigure(
            "samples-over-time",
            "Samples over time",
            pictures_figure(pictures),
            "the fixed noise batch rendered during training",
        )
    )
    if final_png is not None:
        figures.append(PageFigure("final-grid", "Final samples", final_png, "the last sample grid"))
    return figures


def build_report(
    run_dir: str | Path,
    out_dir: str | Path | None = None,
    samples_dir: str | Path | None = None,
    metrics_csv: str | Path | None = None,
    config: Mapping[str, Any] | None = None,
    max_grids: int = 8,
) -> ReportFiles:
    """Write ``report.html`` and ``report.png`` for the run in ``run_dir`` into ``out_dir``
    (default: the run folder). Raises :class:`GanforgeError` when the folder has neither
    logged scalars nor sample grids."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise GanforgeError(f"run_dir={run_dir} is not a folder; give a training run folder")
    samples_dir = Path(samples_dir) if samples_dir else run_dir / "samples"
    csv_path = Path(metrics_csv) if metrics_csv else find_metrics_csv(run_dir)
    history = read_history(csv_path) if csv_path and csv_path.is_file() else {}
    grids, final = sample_grids(samples_dir)
    if not history and not grids and final is None:
        raise GanforgeError(
            f"{run_dir} holds no logged scalars (csv/metrics.csv) and no sample grids "
            f"({samples_dir}/*.png); is it a ganforge training run folder?"
        )
    if not history:
        log.warning("no metrics.csv under %s: the report has sample grids only", run_dir)
    pictures = [(step, read_picture(path)) for step, path in spread(grids, max_grids)]
    # without final.png (a run stopped early) the latest grid stands in for it
    last_grid = final or (grids[-1][1] if grids else None)
    final_picture = (None, read_picture(last_grid)) if last_grid else None
    title = f"ganforge run {run_dir.resolve().name}"
    out_dir = Path(out_dir) if out_dir else run_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    png = out_dir / "report.png"
    png.write_bytes(overview_figure(title, history, pictures, final_picture))
    page = render_page(
        title,
        str(run_dir.resolve()),
        page_figures(history, pictures, last_grid.read_bytes() if last_grid else None),
        config_rows(config if config is not None else run_config(run_dir)),
        last_values(history),
    )
    html_path = out_dir / "report.html"
    html_path.write_text(page, encoding="utf-8")
    return ReportFiles(html_path, png)
