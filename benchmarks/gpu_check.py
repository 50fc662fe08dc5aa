"""The GPU proof in one command: the headline run, the fast-path table and 2-GPU DDP.

On whatever CUDA GPUs the machine has:

1. the headline command ``python src/train.py model=dcgan data=celeba trainer=gpu`` on a
   synthetic CelebA tree (random JPEGs in torchvision's layout) for ``--steps`` generator
   steps, one GPU;
2. the fast-path table of ``benchmarks/fast_path.py`` (``--cases dcgan64``);
3. when two or more GPUs exist, the headline command with ``trainer.devices=2`` (DDP).

Each training run records what really ran (devices, processes, precision, whether G and D
stayed compiled, steady-state images/s) through a callback added on the command line. One
table is printed; the exit status is 1, with a ``FAILED`` line per cause, when anything fell
back (compile to eager, bf16 to fp32) or failed, and 2 when there is no CUDA device.

    python benchmarks/gpu_check.py                  # everything, a few minutes on one GPU
    python benchmarks/gpu_check.py --steps 100 --skip-fast-path
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
WARMUP = 20  # generator steps before the images/s clock starts (compiling, autotuning)


class Effective(L.Callback):
    """Writes what the run really used (rank 0) to ``path`` as JSON when training ends."""

    def __init__(self, path: str):
        self.path = path
        self.start: tuple[float, int] | None = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.start is None and pl_module.g_step >= WARMUP:
            torch.cuda.synchronize()
            self.start = (time.perf_counter(), pl_module.g_step)

    def on_train_end(self, trainer, pl_module) -> None:
        from ganforge.fast_path import is_compiled

        torch.cuda.synchronize()
        steps = pl_module.g_step - (self.start[1] if self.start else 0)
        seconds = time.perf_counter() - self.start[0] if self.start else float("nan")
        batch = trainer.datamodule.loader_batch_size * trainer.world_size
        record = {
            "devices": torch.cuda.get_device_name(pl_module.device),
            "processes": trainer.world_size,
            "precision": trainer.precision,
            "autocast_bf16": trainer.precision == "bf16-mixed" and torch.cuda.is_bf16_supported(),
            "compiled": is_compiled(pl_module.generator) and is_compiled(pl_module.discriminator),
            "g_steps": pl_module.g_step,
            "images/s": steps * batch / seconds if steps > 0 else float("nan"),
        }
        if trainer.is_global_zero:
            Path(self.path).write_text(json.dumps(record))


def make_celeba(root: Path, n: int = 1024) -> None:
    """``n`` random 178x218 JPEGs with a partition file: all in the train split."""
    from PIL import Image

    images = root / "celeba" / "img_align_celeba"
    images.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(0)
    names = [f"{i:06d}.jpg" for i in range(1, n + 1)]
    for name in names:
        pixels = torch.randint(0, 256, (218, 178, 3), dtype=torch.uint8, generator=gen)
        Image.fromarray(pixels.numpy()).save(images / name, quality=90)
    lines = "".join(f"{name} 0\n" for name in names)
    (root / "celeba" / "list_eval_partition.txt").write_text(lines)


def headline(name: str, work: Path, steps: int, devices: int) -> dict[str, object]:
    """Train the headline command with ``trainer=gpu`` on ``devices`` GPUs; what ran."""
    record = work / f"{name}.json"
    cmd = [
        *(sys.executable, "src/train.py", "model=dcgan", "data=celeba", "trainer=gpu"),
        *(f"trainer.devices={devices}", f"data.root={work}", "data.num_val=0"),
        *(f"max_g_steps={steps}", "trainer.max_epochs=-1", "logger=csv"),
        *("callbacks.metrics=null", "callbacks.progress=null", "optimized_metric=loss/g"),
        "trainer.enable_progress_bar=false",
        "+callbacks.effective._target_=gpu_check.Effective",
        f"+callbacks.effective.path={record}",
    ]
    pythonpath = os.pathsep.join([str(ROOT / "benchmarks"), str(ROOT / "src")])
    env = {**os.environ, "PYTHONPATH": pythonpath, "GANFORGE_ROOT": str(work / name)}
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    text = out.stdout + out.stderr
    row: dict[str, object] = {"check": name}
    if out.returncode != 0 or not record.is_file():
        print(text[-4000:], file=sys.stderr)
        return {**row, "failed": f"exit status {out.returncode}"}
    row.update(json.loads(record.read_text()))
    problems = []
    if not row["compiled"] or "running it eagerly" in text:
        problems.append("torch.compile fell back to eager")
    if not row["autocast_bf16"]:
        problems.append(f"precision {row['precision']} is not bf16 autocast")
    if row["processes"] != devices:
        problems.append(f"{row['processes']} processes, not {devices}")
    return {**row, "failed": "; ".join(problems)}


def fast_path(work: Path) -> list[dict[str, object]]:
    """``fast_path.py --cases dcgan64``: one row per variant, failed when all_on fell back."""
    out_file = work / "fast_path.json"
    cmd = [sys.executable, "benchmarks/fast_path.py", "--device", "cuda", "--cases", "dcgan64"]
    out = subprocess.run([*cmd, "--out", str(out_file)], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0 or not out_file.is_file():
        print(out.stdout[-2000:] + out.stderr[-4000:], file=sys.stderr)
        return [{"check": "fast_path", "failed": f"exit status {out.returncode}"}]
    rows = []
    for r in json.loads(out_file.read_text())["results"]:
        fell_back = r["variant"] == "all_on" and not (
            r["compiled"] and r["precision"] == "bf16-mixed"
        )
        rows.append(
            {
                "check": f"fast_path {r['variant']}",
                "precision": r["precision"],
                "compiled": r["compiled"],
                "images/s": r["framework images/s"],
                "plain images/s": r["plain images/s"],
                "failed": "all_on fell back (compile or bf16)" if fell_back else "",
            }
        )
    return rows


def print_table(rows: list[dict[str, object]]) -> None:
    """One aligned text table of every row's values (floats to one decimal)."""
    columns = list(dict.fromkeys(k for r in rows for k in r))

    def cell(value: object) -> str:
        return f"{value:.1f}" if isinstance(value, float) else str(value)

    cells = [columns, *([cell(r.get(c, "")) for c in columns] for r in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    for row in cells:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="generator steps per run")
    parser.add_argument("--images", type=int, default=1024, help="synthetic CelebA images")
    parser.add_argument("--skip-fast-path", action="store_true", help="no fast-path table")
    parser.add_argument("--out", type=Path, default=RESULTS / "gpu_check.json")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; this check needs at least one GPU", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        make_celeba(work, args.images)
        rows.append(headline("headline 1 GPU", work, args.steps, 1))
        if not args.skip_fast_path:
            rows.extend(fast_path(work))
        if torch.cuda.device_count() >= 2:
            rows.append(headline("headline 2 GPUs DDP", work, args.steps, 2))
    print_table(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"benchmark": "gpu_check", "results": rows}, indent=2))
    failed = [r for r in rows if r.get("failed")]
    for r in failed:
        print(f"FAILED: {r['check']}: {r['failed']}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
