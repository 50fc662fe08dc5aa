"""Batches/s of the in-memory path vs the DataLoader path on MNIST-sized data, side by side.

Writes a synthetic 60,000-image MNIST (gzipped IDX files in torchvision's ``MNIST/raw`` layout)
to a temporary folder, then reads it through ``MNISTDataModule`` both ways with the same batch
size and image size:

- ``in_memory``: one uint8 tensor, batched by index, converted to float per batch;
- ``dataloader``: torchvision's MNIST with per-sample transforms, ``num_workers`` workers.

    python benchmarks/data.py --batches 300 --workers 2 --out benchmarks/results/data.json
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import struct
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ganforge.data import MNISTDataModule


def write_idx_gz(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(header + array.tobytes())


def write_mnist(root: Path, n: int) -> None:
    """A synthetic MNIST of ``n`` random 28x28 digits (train and test files)."""
    rng = np.random.default_rng(0)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    for split in ("train", "t10k"):
        write_idx_gz(raw / f"{split}-images-idx3-ubyte.gz", images)
        write_idx_gz(raw / f"{split}-labels-idx1-ubyte.gz", labels)


def measure(dm: MNISTDataModule, batches: int) -> dict[str, float]:
    """Set up ``dm`` and time ``batches`` batches after a first (warm-up) one."""
    start = time.perf_counter()
    dm.setup()
    setup_s = time.perf_counter() - start
    loader = iter(dm.train_dataloader())
    next(loader)  # worker start-up and first batch are not throughput
    start = time.perf_counter()
    for _ in range(batches):
        x, _ = next(loader)
        assert x.dtype == torch.float32
    elapsed = time.perf_counter() - start
    return {"setup_s": setup_s, "batches": batches, "batches_per_s": batches / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=60_000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/data.json"))
    args = parser.parse_args()

    common = {"download": False, "batch_size": args.batch_size, "image_size": args.image_size}
    with tempfile.TemporaryDirectory() as tmp:
        write_mnist(Path(tmp), args.samples)
        results = {
            "in_memory": measure(MNISTDataModule(root=tmp, in_memory=True, **common), args.batches),
            "dataloader": measure(
                MNISTDataModule(root=tmp, in_memory=False, num_workers=args.workers, **common),
                args.batches,
            ),
        }
    ratio = results["in_memory"]["batches_per_s"] / results["dataloader"]["batches_per_s"]
    report = {
        "config": {**vars(args), "out": str(args.out)},
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
        "torch": torch.__version__,
        "results": results,
        "speedup_in_memory_vs_dataloader": ratio,
    }
    print(f"{'path':<12}{'setup s':>10}{'batches/s':>12}")
    for name, r in results.items():
        print(f"{name:<12}{r['setup_s']:>10.2f}{r['batches_per_s']:>12.1f}")
    print(
        f"in-memory / DataLoader: {ratio:.1f}x  (batch {args.batch_size}, {args.workers} workers)"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
