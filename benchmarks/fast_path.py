"""Images/s of each GPU fast-path option on and off, against the plain PyTorch loop.

One row per variant of ``trainer=gpu``: everything on, each option switched off on its own, and
everything off. Every row is a ``train_step.py`` interleaved run (one plain step, one framework
iteration, alternating in one process), so each row carries its own plain-loop figure measured
side by side. The plain loop is the fp32 eager tutorial loop of ``train_step.py``: it never
uses autocast, channels_last, compile or fused Adam; it does share the process-wide switches a
row sets (cuDNN autotuning, TF32 matmuls), so its images/s moves with those two rows.

What actually ran is read back from the trained module at the end of every run (compiled or
eager after the guarded fallback, fused optimizers, precision, cuDNN and matmul settings) and
printed next to the figures: a compile that fell back to eager shows as ``compiled False``.

    python benchmarks/fast_path.py --device cuda                     # dcgan64 and resnet32
    python benchmarks/fast_path.py --device cuda --cases dcgan64 --variants all_on no_compile
    python benchmarks/fast_path.py --device cuda --cases dcgan64 --profile-only

Each compile variant spends its warm-up steps compiling; on a GPU budget, run one case a call.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path
from typing import ClassVar

import lightning as L
import torch
from common import RESULTS, load, median, print_table, quiet_run, write_json
from train_step import CASES, FRAMEWORK, Case, profile_step, run_pairs

from ganforge.fast_path import is_compiled

GPU_CASES = {
    "dcgan64": Case([*CASES["dcgan"].overrides, "data.image_size=64"], 128, 5, 20),
    "resnet32": Case(CASES["resnet"].overrides, 128, 5, 20),
}

OFF = {
    "no_bf16": ["trainer.precision=32-true"],
    "no_cudnn_benchmark": ["trainer.benchmark=false"],
    "no_tf32": ["float32_matmul_precision=highest"],
    "no_channels_last": ["model.fast_path.channels_last=false"],
    "no_compile": ["model.fast_path.compile=false"],
    "no_fused_adam": ["model.fast_path.fused_optimizer=false"],
}
VARIANTS = {"all_on": [], **OFF, "all_off": [o for v in OFF.values() for o in v]}


class Effective(L.Callback):
    """Records the settings the finished run really used."""

    last: ClassVar[dict[str, object]] = {}

    def on_train_end(self, trainer, pl_module) -> None:
        optimizers = trainer.optimizers
        Effective.last = {
            "precision": trainer.precision,
            "compiled": is_compiled(pl_module.generator) and is_compiled(pl_module.discriminator),
            "channels_last": any(
                p.dim() == 4 and not p.is_contiguous()  # NHWC weights are not NCHW-contiguous
                for p in pl_module.discriminator.parameters()
            ),
            "fused": all(bool(o.defaults.get("fused")) for o in optimizers),
            "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "matmul": torch.get_float32_matmul_precision(),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=list(GPU_CASES), choices=list(GPU_CASES))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--pairs", type=int, default=None, help="timed step pairs per run")
    parser.add_argument("--preset", nargs="*", default=["trainer=gpu"], help="base overrides")
    parser.add_argument("--device", default="cuda", help="the plain loop's device")
    parser.add_argument("--profile", action="store_true", help="also profile one all-on step")
    parser.add_argument("--profile-only", action="store_true", help="only the profile")
    parser.add_argument("--out", type=Path, default=RESULTS / "fast_path.json")
    args = parser.parse_args()
    quiet_run(None)

    rows, raw = [], {"load_average_at_start": load()}
    effective = f"{Effective.__module__}.Effective"
    for name in args.cases:
        case = GPU_CASES[name]
        raw[name] = {"case": asdict(case)}
        for variant in [] if args.profile_only else args.variants:
            torch._dynamo.reset()  # no compiled graph nor recompile count carries over
            extra = [*args.preset, *VARIANTS[variant]]
            timed = run_pairs(
                case, FRAMEWORK, args.pairs or case.steps, extra, args.device, {"e": effective}
            )
            images = case.batch_size * case.n_critic
            rows.append(
                {
                    "case": name,
                    "variant": variant,
                    "plain images/s": images / median([p for p, _ in timed]),
                    "framework images/s": images / median([f for _, f in timed]),
                    "ratio (median)": median([p / f for p, f in timed]),
                    **Effective.last,
                }
            )
            raw[name][variant] = {
                "overrides": extra,
                "effective": Effective.last,
                "plain_s": [p for p, _ in timed],
                "framework_s": [f for _, f in timed],
            }
            print(rows[-1], flush=True)
            write_json(args.out, {"benchmark": "fast_path", "results": rows, "seconds": raw})
        if args.profile or args.profile_only:
            torch._dynamo.reset()
            raw[name]["profile_top_ops"] = profile_step(case, args.preset)
            write_json(args.out, {"benchmark": "fast_path", "results": rows, "seconds": raw})
    if rows:
        print()
        print_table(rows, list(rows[0]))


if __name__ == "__main__":
    main()
