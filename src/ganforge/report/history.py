"""Scalar histories of a run, read from the ``metrics.csv`` that Lightning's CSVLogger wrote."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from ganforge.errors import GanforgeError

#: one scalar over training: generator iterations and values
Series = tuple[list[int], list[float]]

#: CSV columns that are axes, not scalars
AXES = ("step", "epoch")


def find_metrics_csv(run_dir: Path) -> Path | None:
    """The run's ``csv/metrics.csv`` (where the report callback and ``logger=csv`` write),
    else the newest ``metrics.csv`` anywhere under ``run_dir``."""
    preferred = run_dir / "csv" / "metrics.csv"
    if preferred.is_file():
        return preferred
    found = sorted(run_dir.rglob("metrics.csv"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def read_history(path: Path) -> dict[str, Series]:
    """Every logged scalar in ``path`` as (steps, values), in file order; empty cells, which
    CSVLogger writes for keys not logged at a step, and non-finite values are skipped."""
    history: dict[str, Series] = {}
    try:
        with path.open(newline="") as f:
            for row_number, row in enumerate(csv.DictReader(f)):
                step = _number(row.get("step"))
                for key, text in row.items():
                    value = _number(text)
                    if key is None or key in AXES or value is None:
                        continue
                    steps, values = history.setdefault(key, ([], []))
                    steps.append(int(step) if step is not None else row_number)
                    values.append(value)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise GanforgeError(f"cannot read the metrics file {path}: {err}") from None
    return history
