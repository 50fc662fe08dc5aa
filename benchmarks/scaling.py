"""How the framework's step time grows with batch size and image size (16 -> 128) on CPU.

Each point is ``ganforge.run.train`` on the real configs (DCGAN on MNIST 5k resized to
``data.image_size``, non-saturating loss, no callbacks, CSV logger), timed step by step over a
few steady-state steps of ``--repeats`` runs; the table gives the fastest step (the figure other
jobs on a shared machine disturb least) and the median. Two sweeps: image size at a fixed batch
size, and batch size at 32x32.

    python benchmarks/scaling.py
    python benchmarks/scaling.py --image-sizes 16 32 64 --batch-sizes 32 128 --repeats 1
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import (
    RESULTS,
    StepTimer,
    compose_config,
    load,
    median,
    print_table,
    quiet_run,
    timer_callback_config,
    write_json,
)
from omegaconf import open_dict
from train_step import FRAMEWORK

from ganforge.run import train

WARMUP = 1


def step_seconds(image_size: int, batch_size: int, steps: int) -> list[float]:
    """One ``ganforge.run.train`` run; wall time of each steady-state step."""
    cfg = compose_config(
        [
            "model=dcgan",
            "loss=nonsaturating",
            *FRAMEWORK,
            f"data.image_size={image_size}",
            f"data.batch_size={batch_size}",
            f"max_g_steps={WARMUP + steps + 1}",
            "trainer.max_epochs=-1",
        ]
    )
    with open_dict(cfg):
        cfg.callbacks = {"step_timer": timer_callback_config()}
    StepTimer.instances.clear()
    train(cfg)
    return StepTimer.instances[-1].step_seconds(WARMUP, steps)


def point(image_size: int, batch_size: int, steps: int, repeats: int) -> dict[str, float]:
    """Step time for one (image size, batch size) point over all timed steps of all repeats.

    The minimum is the figure least disturbed by other jobs on a shared machine; the median
    is kept next to it to show how much they disturbed.
    """
    times = [t for _ in range(repeats) for t in step_seconds(image_size, batch_size, steps)]
    fastest = min(times)
    print(f"image {image_size} batch {batch_size}: {fastest:.3f} s/step min  (load {load()})")
    return {
        "image_size": image_size,
        "batch_size": batch_size,
        "s/step (min)": fastest,
        "s/step (median)": median(times),
        "images/s (best)": batch_size / fastest,
        "ms/image (best)": 1000 * fastest / batch_size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-sizes", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--image-batch-size", type=int, default=32)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--out", type=Path, default=RESULTS / "scaling.json")
    args = parser.parse_args()
    quiet_run(args.threads)

    start_load = load()
    by_image = [
        point(size, args.image_batch_size, args.steps, args.repeats) for size in args.image_sizes
    ]
    by_batch = [point(32, b, args.steps, args.repeats) for b in args.batch_sizes]
    columns = list(by_image[0])
    print(f"\nstep time vs image size (batch {args.image_batch_size})")
    print_table(by_image, columns)
    print("\nstep time vs batch size (32x32)")
    print_table(by_batch, columns)
    write_json(
        args.out,
        {
            "benchmark": "scaling",
            "model": "dcgan, nonsaturating, ganforge.run.train, no callbacks",
            "steps": args.steps,
            "repeats": args.repeats,
            "load_average_at_start": start_load,
            "by_image_size": by_image,
            "by_batch_size": by_batch,
        },
    )


if __name__ == "__main__":
    main()
