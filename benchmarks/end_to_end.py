"""Wall time and FID of the README's default run, and the FID reached in a fixed time budget.

Both runs are ``python src/train.py`` as a user types it (the embedded MNIST 5k default, its
default callbacks and loggers), in a fresh process, with only the run folder moved to a
temporary place and, for the budget run, ``trainer.max_time`` set. The FID comes from the run's
own ``csv/metrics.csv`` (the ``metrics/fid`` rows that the metrics callback logs and the run
report collects). Wall time includes start-up, data loading and the periodic evaluations; the
budget bounds training (Lightning's ``max_time``, which counts evaluation inside ``fit`` too),
so the budget run's wall time is a little longer than the budget.

    python benchmarks/end_to_end.py                       # default run + 5-minute budget
    python benchmarks/end_to_end.py --skip-default --budget-minutes 3
    python benchmarks/end_to_end.py --skip-budget --overrides trainer.precision=bf16-mixed
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import RESULTS, ROOT, load, print_table, write_json


def fid_curve(run_dir: Path) -> list[dict[str, float]]:
    """(epoch, step, FID) rows from the run's ``csv/metrics.csv`` (empty when none was logged)."""
    path = run_dir / "csv" / "metrics.csv"
    if not path.exists():
        return []
    with path.open() as f:
        rows = [r for r in csv.DictReader(f) if r.get("metrics/fid")]
    return [
        {"epoch": int(r["epoch"]), "step": int(r["step"]), "fid": float(r["metrics/fid"])}
        for r in rows
    ]


def train(run_dir: Path, overrides: list[str], timeout: float) -> dict[str, Any]:
    """Run ``python src/train.py`` into ``run_dir``; wall time, exit status and FID curve."""
    cmd = [sys.executable, "src/train.py", f"hydra.run.dir={run_dir}", *overrides]
    env = {**os.environ, "WANDB_MODE": os.environ.get("WANDB_MODE", "offline")}
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - start
    curve = fid_curve(run_dir)
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n")
    return {
        "command": " ".join(["python", *cmd[1:]]),
        "exit_status": proc.returncode,
        "wall_s": wall,
        "final_fid": curve[-1]["fid"] if curve else None,
        "fid_curve": curve,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-minutes", type=float, default=5.0)
    parser.add_argument("--skip-default", action="store_true", help="only the budget run")
    parser.add_argument("--skip-budget", action="store_true", help="only the default run")
    parser.add_argument("--timeout-minutes", type=float, default=60.0)
    parser.add_argument(
        "--overrides", nargs="*", default=[], help="config overrides added to both runs"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "end_to_end.json")
    args = parser.parse_args()

    cache = Path(os.environ.get("GANFORGE_CACHE", ROOT / ".cache" / "ganforge"))
    cache_present = cache.exists()  # real-image statistics are computed once, then reused
    start_load = load()
    runs: dict[str, dict[str, Any]] = {}
    timeout = args.timeout_minutes * 60
    with tempfile.TemporaryDirectory(prefix="ganforge-e2e-") as tmp:
        if not args.skip_default:
            print(f"default run ... (load {load()})", flush=True)
            runs["default"] = train(Path(tmp) / "default", args.overrides, timeout)
        if not args.skip_budget:
            seconds = round(args.budget_minutes * 60)
            print(f"{seconds} s budget run ... (load {load()})", flush=True)
            hms = time.strftime("%H:%M:%S", time.gmtime(seconds))
            budget = [*args.overrides, f'+trainer.max_time="00:{hms}"']
            runs[f"budget_{seconds}s"] = train(Path(tmp) / "budget", budget, timeout)
    rows = [
        {
            "run": name,
            "exit": r["exit_status"],
            "wall_s": r["wall_s"],
            "FID": r["final_fid"] if r["final_fid"] is not None else "not logged",
            "FID evals": len(r["fid_curve"]),
        }
        for name, r in runs.items()
    ]
    print_table(rows, list(rows[0]))
    write_json(
        args.out,
        {
            "benchmark": "end_to_end",
            "overrides": args.overrides,
            "load_average_at_start": start_load,
            "load_average_at_end": load(),
            "real_stats_cache_present_at_start": cache_present,
            "runs": runs,
        },
    )


if __name__ == "__main__":
    main()
