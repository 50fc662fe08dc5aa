"""Quality per minute: FID and IS over wall-clock time for a fixed training budget.

Each variant trains for the same wall time on the embedded MNIST 5k default and keeps a copy of
its generator at fixed marks of elapsed training time; after training (outside the budget) every
copy is scored like ``python src/eval.py`` scores a checkpoint: 10,000 samples, the digits
feature space, the training split's real statistics.

Variants:
- ``new``: ``conf/`` as it is (the README's default command);
- ``old``: the default before issue 18 (widths 64, lr 2e-4, no EMA, no R1: :data:`OLD_DEFAULT`);
- ``tutorial``: the PyTorch DCGAN tutorial loop (its networks scaled to 32x32, BCE, Adam 2e-4
  beta1 0.5, batch 128) written out below in plain PyTorch, on the same training digits;
- any ``name=override,override`` given with ``--variant``, on top of ``new``.

The ganforge variants run ``ganforge.run.train`` in this process exactly as ``src/train.py``
does (callbacks, in-run metrics and loggers included, so their cost is inside the budget),
with ``trainer.max_time`` as the budget and no epoch limit.

    python benchmarks/quality.py                                 # new, old, tutorial; seed 0
    python benchmarks/quality.py --seeds 0 1 2 --minutes 5.5
    python benchmarks/quality.py --variants new --variant lr4=model.optimizer_g.lr=4e-4
    python benchmarks/quality.py --summarize benchmarks/results/quality_levers_*.json
    python benchmarks/quality.py --steps 3966 --every 1e9 --variant \
        "betas=model.optimizer_g.betas=[0,0.99] model.optimizer_d.betas=[0,0.99]"
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import shlex
import statistics
import time
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import torch
from common import RESULTS, ROOT, compose_config, print_table, quiet_run, write_json
from omegaconf import open_dict
from torch import Tensor, nn

from ganforge.data import MNIST5kDataModule
from ganforge.metrics import make_evaluator
from ganforge.run import train

#: overrides that turn today's conf/ back into the default before issue 18
OLD_DEFAULT = [
    "loss=nonsaturating",
    "model.ema_kimg=null",
    "model.generator.base_width=64",
    "model.discriminator.base_width=64",
    "model.optimizer_g.lr=2e-4",
    "model.optimizer_d.lr=2e-4",
    "callbacks.metrics.every_n_epochs=5",
]


class Snapshots(L.Callback):
    """Copies of the module's generator weights (and EMA) at ``every_s`` seconds of training,
    and the stop after ``stop_step`` generator steps when a step budget is given.

    The clock starts when training starts (after data loading and the real statistics), as
    Lightning's ``max_time`` does. Copying a few MB of weights takes milliseconds.
    """

    def __init__(self, every_s: float, stop_step: int | None = None):
        self.every_s, self.stop_step = every_s, stop_step
        self.module: L.LightningModule | None = None
        self.taken: list[tuple[float, int, dict[str, Tensor]]] = []
        Snapshots.last = self

    def on_train_start(self, trainer, pl_module) -> None:
        self.module, self.start, self.next = pl_module, time.perf_counter(), self.every_s
        self.elapsed = 0.0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.elapsed = time.perf_counter() - self.start
        if self.elapsed >= self.next:
            self._take(self.elapsed, pl_module)
            self.next += self.every_s
        if self.stop_step is not None and pl_module.g_step >= self.stop_step:
            trainer.should_stop = True

    def on_train_end(self, trainer, pl_module) -> None:
        # at the last step's end: the end-of-run evaluations of other callbacks are not training
        if not self.taken or self.taken[-1][1] != pl_module.g_step:
            self._take(self.elapsed, pl_module)

    def _take(self, elapsed: float, pl_module) -> None:
        state = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}
        self.taken.append((elapsed, pl_module.g_step, state))


def run_ganforge(
    overrides: list[str], seed: int, budget_s: float, every_s: float, out: Path, steps: int | None
):
    """Train one ganforge variant for ``budget_s`` seconds, or ``steps`` generator steps when
    given; return the module and its snapshots."""
    cfg = compose_config([*overrides, f"seed={seed}", "trainer.max_epochs=-1"], out)
    with open_dict(cfg):
        s = round(budget_s)
        cfg.trainer.max_time = (
            f"{s // 86400:02d}:{s // 3600 % 24:02d}:{s // 60 % 60:02d}:{s % 60:02d}"
        )
        cfg.callbacks.snapshots = {
            "_target_": f"{__name__}.Snapshots",
            "every_s": every_s,
            "stop_step": steps,
        }
    train(cfg)
    snaps = Snapshots.last
    return snaps.module, snaps.taken


class TutorialG(nn.Sequential):
    """The tutorial's generator with one stage fewer (32x32 instead of 64x64)."""

    def __init__(self, nz: int = 100, ngf: int = 64):
        super().__init__(
            nn.ConvTranspose2d(nz, ngf * 4, 4, 1, 0, bias=False),
            nn.BatchNorm2d(ngf * 4),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf, 1, 4, 2, 1, bias=False),
            nn.Tanh(),
        )


class TutorialD(nn.Sequential):
    """The tutorial's discriminator with one stage fewer."""

    def __init__(self, ndf: int = 64):
        super().__init__(
            nn.Conv2d(1, ndf, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 2),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 4),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 4, 1, 4, 1, 0, bias=False),
            nn.Sigmoid(),
        )


def weights_init(m: nn.Module) -> None:
    """The tutorial's N(0, 0.02) conv and N(1, 0.02) BatchNorm initialisation."""
    if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def run_tutorial(
    images: Tensor, seed: int, budget_s: float, every_s: float, steps: float, batch: int = 128
):
    """The tutorial's loop for ``budget_s`` seconds or ``steps`` steps; its generator and
    snapshots."""
    torch.manual_seed(seed)
    g, d = TutorialG(), TutorialD()
    g.apply(weights_init)
    d.apply(weights_init)
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bce = nn.BCELoss()
    taken, step, start, mark = [], 0, time.perf_counter(), every_s
    while (elapsed := time.perf_counter() - start) < budget_s:
        for idx in torch.randperm(len(images)).split(batch):
            real = images[idx]
            d.zero_grad()
            err_real = bce(d(real).view(-1), torch.ones(len(real)))
            err_real.backward()
            fake = g(torch.randn(len(real), 100, 1, 1))
            err_fake = bce(d(fake.detach()).view(-1), torch.zeros(len(real)))
            err_fake.backward()
            opt_d.step()
            g.zero_grad()
            bce(d(fake).view(-1), torch.ones(len(real))).backward()
            opt_g.step()
            step += 1
            elapsed = time.perf_counter() - start
            if elapsed >= mark:
                taken.append((elapsed, step, copy.deepcopy(g.state_dict())))
                mark += every_s
            if elapsed >= budget_s or step >= steps:
                break
        if step >= steps:
            break
    if not taken or taken[-1][1] != step:
        taken.append((elapsed, step, copy.deepcopy(g.state_dict())))
    return g, taken


@torch.no_grad()
def sample_generator(module, n: int, gen: torch.Generator) -> Tensor:
    """``n`` samples of the module's generator itself (not its EMA), in eval mode."""
    g = module.generator.eval()
    try:
        return g(torch.randn(n, module.latent_dim, generator=gen), None)
    finally:
        g.train()


def score(evaluator, sample, device: torch.device) -> dict[str, float]:
    values = evaluator.evaluate(sample, device=device)
    return {k: values[k] for k in ("fid", "is", "modes", "kl_uniform")}


def figure(rows: list[dict[str, Any]], path: Path) -> None:
    """FID and IS over training time, one line per variant and seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    runs = dict.fromkeys((r["variant"], r["seed"]) for r in rows)
    for variant, seed in runs:
        mine = [r for r in rows if r["variant"] == variant and r["seed"] == seed]
        minutes = [r["train_s"] / 60 for r in mine]
        for ax, key in zip(axes, ("fid", "is"), strict=True):
            ax.plot(minutes, [r[key] for r in mine], marker="o", label=f"{variant} (seed {seed})")
    axes[0].set(xlabel="training time (min)", ylabel="FID (digits space)", yscale="log")
    axes[1].set(xlabel="training time (min)", ylabel="Inception Score (digits)")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}")


def summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per variant, mean +- population std over seeds of each run's last snapshot."""
    last = {(r["variant"], r["seed"]): r for r in rows}  # rows are in time order per run
    out = []
    for variant in dict.fromkeys(v for v, _ in last):
        runs = [r for (v, _), r in last.items() if v == variant]
        row: dict[str, Any] = {"variant": variant, "seeds": len(runs)}
        for key in ("g_step", "fid", "is", "modes", "kl_uniform"):
            values = [r[key] for r in runs]
            row[key] = f"{statistics.fmean(values):.4g} ± {statistics.pstdev(values):.2g}"
        out.append(row)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.5, help="training budget per run")
    parser.add_argument("--every", type=float, default=60.0, help="seconds between snapshots")
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="train each run for this many generator steps instead of --minutes (for levers "
        "that leave the cost of a step unchanged, the same wall time on an idle CPU, while "
        "runs may share the CPU)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--variants", nargs="*", default=["new", "old", "tutorial"])
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="'name=override override' (space-separated Hydra overrides, on top of new)",
    )
    parser.add_argument("--samples", type=int, default=10_000, help="samples per score")
    parser.add_argument(
        "--raw-g",
        action="store_true",
        help="also score each ganforge snapshot's generator itself (rows 'name:G'): EMA off at "
        "the same cost, since the average does not change training",
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS / "quality.json")
    parser.add_argument("--figure", type=Path, default=None, help="write FID/IS curves (PNG)")
    parser.add_argument(
        "--summarize",
        type=Path,
        nargs="+",
        default=None,
        help="train nothing: print mean +- std over seeds of the last snapshots in these JSONs",
    )
    args = parser.parse_args()
    if args.summarize:
        rows = [r for path in args.summarize for r in json.loads(path.read_text())["rows"]]
        summarized = summary(rows)
        print_table(summarized, list(summarized[0]))
        return
    quiet_run(args.threads)
    extra = dict(v.split("=", 1) for v in args.variant)
    variants = {"new": [], "old": OLD_DEFAULT} | {k: shlex.split(v) for k, v in extra.items()}
    names = [*args.variants, *extra]
    budget = 24 * 3600.0 if args.steps else args.minutes * 60
    steps, device = args.steps or math.inf, torch.device("cpu")

    data = MNIST5kDataModule(image_size=32, in_memory=True)
    data.setup("fit")
    cache = ROOT / ".cache" / "ganforge" / "real_stats"  # the default run's cache
    evaluator = make_evaluator(data, num_samples=args.samples, cache_dir=str(cache))
    images, _ = data.real_images("train")

    rows: list[dict[str, Any]] = []
    for seed in args.seeds:
        for name in names:
            out = ROOT / "outputs" / "benchmarks" / "quality" / f"{name}-seed{seed}"
            if name == "tutorial":
                g, taken = run_tutorial(images, seed, budget, args.every, steps)
                g.eval()

                def sample(n: int, gen: torch.Generator, g: nn.Module = g) -> Tensor:
                    with torch.no_grad():
                        return g(torch.randn(n, 100, 1, 1, generator=gen))

            else:
                module, taken = run_ganforge(
                    variants[name], seed, budget, args.every, out, args.steps
                )

                def sample(n: int, gen: torch.Generator, module=module) -> Tensor:
                    return module.sample(n, generator=gen)[0]

            samplers = {name: sample}
            if args.raw_g and name != "tutorial" and module.g_ema is not None:
                samplers[f"{name}:G"] = partial(sample_generator, module)
            for elapsed, step, state in taken:
                if name == "tutorial":
                    g.load_state_dict(state)
                else:
                    module.load_state_dict(state)
                for label, draw in samplers.items():
                    row = {"variant": label, "seed": seed, "train_s": elapsed, "g_step": step}
                    rows.append(row | score(evaluator, draw, device))
                    print_table(rows[-1:], list(rows[-1]))
    print_table(rows, ["variant", "seed", "train_s", "g_step", "fid", "is", "modes", "kl_uniform"])
    summarized = summary(rows)
    print_table(summarized, list(summarized[0]))
    if args.figure:
        figure(rows, args.figure)
    write_json(
        args.out,
        {
            "minutes": None if args.steps else args.minutes,
            "steps": args.steps,
            "samples": args.samples,
            "variants": {n: variants.get(n, "plain PyTorch") for n in names},
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
