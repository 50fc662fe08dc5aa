"""Batches/s of the in-memory path vs the DataLoader path on MNIST-sized data, side by side.

Writes a synthetic 60,000-image MNIST (gzipped IDX files in torchvision's ``MNIST/raw`` layout)
to a temporary folder, then reads it through ``MNISTDataModule`` both ways with the same batch
size and image size:

- ``in_memory``: one uint8 tensor, batched by index, converted to float per batch;
- ``dataloader``: torchvision's MNIST with per-sample transforms, ``num_workers`` workers.

    python benchmarks/data.py --batches 300 --workers 2 --out benchmarks/results/data.json

With ``--celeba N`` it measures instead the three ways a CelebA-like tree of N JPEGs (178x218,
torchvision's layout, centre crop 178 -> ``--image-size``) reaches the training step, side
by side in one run: JPEG decoding in ``--workers`` DataLoader workers, the decoded cache
(in-memory path) and LitData streaming shards; plus the time to prepare the cache and write
the shards:

    python benchmarks/data.py --celeba 3000 --image-size 64 --workers 2 \
        --out benchmarks/results/data_celeba.json
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
from PIL import Image

from ganforge.data import CelebADataModule, MNISTDataModule
from ganforge.data.cache import DecodedCache
from ganforge.data.streaming import StreamingDataModule, write_shards


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


def write_celeba(root: Path, n: int) -> None:
    """``n`` 178x218 JPEGs of smooth random colour fields in CelebA's layout (all train)."""
    rng = np.random.default_rng(0)
    folder = root / "celeba" / "img_align_celeba"
    folder.mkdir(parents=True)
    names = [f"{i:06d}.jpg" for i in range(1, n + 1)]
    for name in names:
        small = rng.integers(0, 256, (28, 23, 3), dtype=np.uint8)  # JPEG-friendly content
        Image.fromarray(small).resize((178, 218), Image.BILINEAR).save(folder / name, quality=90)
    (root / "celeba" / "list_eval_partition.txt").write_text("".join(f"{m} 0\n" for m in names))


def measure(dm, batches: int) -> dict[str, float]:
    """Set up ``dm`` and time ``batches`` batches after a first (warm-up) one."""
    start = time.perf_counter()
    dm.setup()
    setup_s = time.perf_counter() - start
    loader = dm.train_dataloader()
    it = iter(loader)
    next(it)  # worker start-up and first batch are not throughput
    start = time.perf_counter()
    for i in range(batches):
        try:
            x, _ = next(it)
        except StopIteration:  # a small dataset: keep going into the next epoch
            it = iter(loader)
            x, _ = next(it)
        assert x.dtype == torch.float32 and i >= 0
    elapsed = time.perf_counter() - start
    rate = batches / elapsed
    return {
        "setup_s": setup_s,
        "batches": batches,
        "batches_per_s": rate,
        "images_per_s": rate * dm.batch_size,
    }


def measure_celeba(args: argparse.Namespace, tmp: Path) -> dict:
    """JPEG workers vs decoded cache vs streaming shards on a synthetic CelebA tree."""
    start = time.perf_counter()
    write_celeba(tmp, args.celeba)
    print(f"wrote {args.celeba} JPEGs in {time.perf_counter() - start:.1f} s")
    common = {"root": str(tmp), "batch_size": args.batch_size, "image_size": args.image_size}
    common["num_val"] = 0
    cached = CelebADataModule(in_memory=True, cache_dir=str(tmp / "cache"), **common)
    start = time.perf_counter()
    entry = DecodedCache(cached, tmp / "cache").prepare(args.workers)
    prepare_s = time.perf_counter() - start
    start = time.perf_counter()
    write_shards(entry, str(tmp / "shards"), num_workers=args.workers)
    shards_s = time.perf_counter() - start
    streaming = StreamingDataModule(
        path=str(tmp / "shards"),
        num_workers=args.workers,
        **{k: v for k, v in common.items() if k != "root"},
    )
    jpeg = CelebADataModule(in_memory=False, num_workers=args.workers, **common)
    results = {
        "jpeg_workers": measure(jpeg, args.batches),
        "decoded_cache": measure(cached, args.batches),
        "streaming_shards": measure(streaming, args.batches),
    }
    return {"results": results, "prepare_cache_s": prepare_s, "write_shards_s": shards_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=60_000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/data.json"))
    parser.add_argument(
        "--celeba", type=int, default=0, help="measure the CelebA paths on N synthetic JPEGs"
    )
    args = parser.parse_args()
    if args.celeba:
        with tempfile.TemporaryDirectory() as tmp:
            report = measure_celeba(args, Path(tmp))
        report["config"] = {**vars(args), "out": str(args.out)}
        report["machine"] = {"cpu_count": os.cpu_count(), "platform": platform.platform()}
        report["torch"] = torch.__version__
        print(
            f"prepare (decode into the cache): {report['prepare_cache_s']:.1f} s; "
            f"write shards: {report['write_shards_s']:.1f} s"
        )
        print(f"{'path':<18}{'setup s':>10}{'images/s':>12}")
        for name, r in report["results"].items():
            print(f"{name:<18}{r['setup_s']:>10.2f}{r['images_per_s']:>12.0f}")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))
        return

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
