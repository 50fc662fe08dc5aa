"""Images/s of ganforge's training loop vs a plain PyTorch loop, interleaved step by step.

The framework side is ``ganforge.run.train`` (what ``python src/train.py`` runs) on the real
composed configs: a Lightning ``Trainer`` driving ``GANModule``, the in-memory data path, a CSV
logger. Two settings are timed:

- ``framework``: no callbacks and no progress bar (the loop itself);
- ``framework+callbacks``: the default callbacks as a user runs them (Rich progress bar,
  divergence guard, preemption handler, sample grids) except the ones that do periodic
  evaluation work outside the step (metrics, report, checkpoints).

The plain side is a loop written here with the same generator and discriminator architecture
(a second copy built from the same config by ``build_module``), loss, optimizer and batch size,
fed from the same in-memory tensor: the classic DCGAN tutorial loop for the non-saturating loss
(D on real, D on a fake batch that G's update then reuses), the reference WGAN-GP loop (critic
steps with the penalty on fresh no-grad fakes, then a G step with D frozen) for ``n_critic > 1``.

A/B alternate at every step in one process: a callback runs one plain step at the start of each
framework batch, so each framework iteration (batch fetch, step, callbacks, logging) is timed
between two plain steps and load drift on this shared machine hits both alike. The figure is
the median over all timed pairs of the per-pair ratio (plain time / framework time); the run is
repeated ``--repeats`` times with fresh models.

    python benchmarks/train_step.py                      # all cases
    python benchmarks/train_step.py --cases dcgan --pairs 10 --no-callbacks
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import hydra
import lightning as L
import torch
import torch.nn.functional as F
from common import (
    RESULTS,
    compose_config,
    load,
    median,
    print_table,
    quiet_run,
    write_json,
)
from omegaconf import open_dict

from ganforge.build import build_module
from ganforge.run import train


@dataclass
class Case:
    overrides: list[str]
    batch_size: int
    warmup: int
    steps: int
    n_critic: int = 1


CASES = {
    # DCGAN 32x32 (MNIST 5k), non-saturating loss
    "dcgan": Case(["model=dcgan", "loss=nonsaturating"], 128, 2, 6),
    # the same networks under WGAN-GP: 5 critic steps with the penalty per generator step
    "wgan_gp": Case(["model=dcgan", "loss=wgan_gp"], 64, 1, 3, n_critic=5),
    # the fully connected GAN of Goodfellow et al. 2014
    "mlp": Case(["model=gan_mlp", "loss=nonsaturating"], 128, 3, 20),
    # the ResNet GAN (WGAN-GP / SNGAN layout) at 32x32, non-saturating loss; for GPU runs
    "resnet": Case(["model=resnet", "loss=nonsaturating"], 64, 1, 4),
}

FRAMEWORK = [
    "logger=csv",
    "callbacks=none",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
]
WITH_CALLBACKS = [
    "logger=csv",
    "callbacks.metrics=null",
    "callbacks.report=null",
    "callbacks.checkpoint=null",
    "callbacks.model_summary=null",
]


class PlainLoop:
    """The hand-written loop, one step per call, on its own copy of the networks."""

    def __init__(self, cfg, batch_size: int, device: torch.device):
        torch.manual_seed(cfg.seed)
        datamodule = hydra.utils.instantiate(cfg.data)
        datamodule.setup()
        self.device = device
        self.images = datamodule.train_set[0].to(device)
        module = build_module(cfg).to(device)  # the same networks, loss and optimizers
        self.netG, self.netD, self.loss = module.generator, module.discriminator, module.loss
        self.optD = module.optimizer_d(self.netD.parameters())
        self.optG = module.optimizer_g(self.netG.parameters())
        self.b, self.k, self.nz = batch_size, self.loss.n_critic, self.netG.latent_dim
        self.per_epoch = len(self.images) // (self.b * self.k)
        self.order = torch.randperm(len(self.images), device=device)
        self.i = 0
        self.losses: list[tuple[float, float]] = []
        self.step_fn: Callable[[torch.Tensor], None] = (
            self.dcgan_step if self.k == 1 else self.wgan_gp_step
        )

    def step(self) -> None:
        n = self.b * self.k
        j = self.i % self.per_epoch
        self.i += 1
        self.step_fn(self.images[self.order[j * n : (j + 1) * n]])

    def dcgan_step(self, real: torch.Tensor) -> None:
        netG, netD, b = self.netG, self.netD, self.b
        # (1) Update D: maximize log(D(x)) + log(1 - D(G(z)))
        netD.zero_grad()
        label = torch.full((b,), 1.0, device=self.device)
        errD_real = F.binary_cross_entropy_with_logits(netD(real), label)
        errD_real.backward()
        fake = netG(torch.randn(b, self.nz, device=self.device))
        label.fill_(0.0)
        errD_fake = F.binary_cross_entropy_with_logits(netD(fake.detach()), label)
        errD_fake.backward()
        self.optD.step()
        # (2) Update G: maximize log(D(G(z)))
        netG.zero_grad()
        label.fill_(1.0)
        errG = F.binary_cross_entropy_with_logits(netD(fake), label)
        errG.backward()
        self.optG.step()
        self.losses.append(((errD_real + errD_fake).item(), errG.item()))

    def wgan_gp_step(self, reals: torch.Tensor) -> None:
        netG, netD, b = self.netG, self.netD, self.b
        for p in netD.parameters():
            p.requires_grad_(True)
        for real in reals.chunk(self.k):
            netD.zero_grad()
            with torch.no_grad():
                fake = netG(torch.randn(b, self.nz, device=self.device))
            alpha = torch.rand(b, 1, 1, 1, device=self.device)
            x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
            (grad,) = torch.autograd.grad(netD(x_hat).sum(), x_hat, create_graph=True)
            gp = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
            errD = netD(fake).mean() - netD(real).mean() + self.loss.gp_weight * gp
            errD.backward()
            self.optD.step()
        for p in netD.parameters():
            p.requires_grad_(False)
        netG.zero_grad()
        errG = -netD(netG(torch.randn(b, self.nz, device=self.device))).mean()
        errG.backward()
        self.optG.step()
        self.losses.append((errD.item(), errG.item()))


class Interleave(L.Callback):
    """Runs one plain step at the start of every framework batch and times both.

    Hydra builds it from ``callbacks.interleave`` inside ``ganforge.run.train``; the plain loop
    it drives is set on the class beforehand.
    """

    plain: ClassVar[PlainLoop | None] = None
    last: ClassVar[Interleave | None] = None

    def __init__(self):
        self.plain_s: list[float] = []
        self.framework_s: list[float] = []
        self._plain_end: float | None = None
        Interleave.last = self

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()  # GPU work is asynchronous: time what has finished
        start = time.perf_counter()
        if self._plain_end is not None:  # the previous framework iteration, fetch included
            self.framework_s.append(start - self._plain_end)
        assert Interleave.plain is not None
        Interleave.plain.step()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self._plain_end = time.perf_counter()
        self.plain_s.append(self._plain_end - start)


class ProfileOneStep(L.Callback):
    """Profiles the framework iteration after ``warmup`` ones with ``torch.profiler``."""

    warmup: ClassVar[int] = 2
    last: ClassVar[ProfileOneStep | None] = None

    def __init__(self):
        self.profiler: torch.profiler.profile | None = None
        ProfileOneStep.last = self

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == self.warmup:
            self.profiler = torch.profiler.profile(record_shapes=False)
            self.profiler.__enter__()
        elif batch_idx == self.warmup + 1 and self.profiler is not None:
            if torch.cuda.is_available():
                torch.cuda.synchronize()  # the step's kernels finish inside the profile
            self.profiler.__exit__(None, None, None)


def profile_step(case: Case, extra: list[str] = ()) -> list[dict[str, float | str]]:
    """The ops taking the most self time in one framework iteration (no callbacks): GPU
    kernel time when CUDA is there (where a GPU step spends its time), else CPU time."""
    overrides = [*case.overrides, f"data.batch_size={case.batch_size}", *FRAMEWORK, *extra]
    cfg = compose_config([*overrides, f"max_g_steps={ProfileOneStep.warmup + 2}"])
    with open_dict(cfg):
        cfg.callbacks = {"profile": {"_target_": f"{ProfileOneStep.__module__}.ProfileOneStep"}}
    train(cfg)
    prof = ProfileOneStep.last.profiler if ProfileOneStep.last else None
    assert prof is not None
    key = "self_device_time_total" if torch.cuda.is_available() else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=key, row_limit=15))
    events = sorted(prof.key_averages(), key=lambda e: getattr(e, key), reverse=True)
    total = sum(getattr(e, key) for e in events)
    return [
        {"op": e.key, f"{key}_ms": getattr(e, key) / 1000, "share": getattr(e, key) / total}
        for e in events[:15]
    ]


def run_pairs(
    case: Case,
    variant: list[str],
    pairs: int,
    extra: list[str] = (),
    device: str = "cpu",
    callbacks: dict[str, str] | None = None,
) -> list[tuple[float, float]]:
    """(plain s, framework s) for ``pairs`` adjacent steps after ``case.warmup`` untimed ones.

    ``extra`` overrides apply to both sides (e.g. ``trainer=gpu data.image_size=64``), except
    that the plain loop's networks are never compiled nor converted to channels_last.
    ``callbacks`` (name: ``_target_``) join the framework run, e.g. to read its state.
    """
    overrides = [*case.overrides, f"data.batch_size={case.batch_size}", *extra]
    plain_cfg = compose_config(
        [*overrides, "model.fast_path.compile=false", "model.fast_path.channels_last=false"]
    )
    Interleave.plain = PlainLoop(plain_cfg, case.batch_size, torch.device(device))
    total = case.warmup + pairs + 1
    cfg = compose_config([*overrides, *variant, f"max_g_steps={total}", "trainer.max_epochs=-1"])
    with open_dict(cfg):
        if cfg.get("callbacks") is None:
            cfg.callbacks = {}
        cfg.callbacks.interleave = {"_target_": f"{Interleave.__module__}.Interleave"}
        for name, target in (callbacks or {}).items():
            cfg.callbacks[name] = {"_target_": target}
    train(cfg)
    timer = Interleave.last
    assert timer is not None and len(timer.framework_s) == total - 1
    plain = timer.plain_s[case.warmup : total - 1]
    return list(zip(plain, timer.framework_s[case.warmup :], strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cases", nargs="+", default=["dcgan", "wgan_gp", "mlp"], choices=list(CASES)
    )
    parser.add_argument("--repeats", type=int, default=2, help="fresh runs per case and variant")
    parser.add_argument("--pairs", type=int, default=None, help="timed step pairs per run")
    parser.add_argument("--no-callbacks", action="store_true", help="skip framework+callbacks")
    parser.add_argument(
        "--overrides", nargs="*", default=[], help="extra config overrides for both sides"
    )
    parser.add_argument("--device", default="cpu", help="the plain loop's device (cuda on GPU)")
    parser.add_argument("--profile", action="store_true", help="also profile one step per case")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--out", type=Path, default=RESULTS / "train_step.json")
    args = parser.parse_args()
    quiet_run(args.threads)

    start_load = load()
    variants = {"framework": FRAMEWORK}
    if not args.no_callbacks:
        variants["framework+callbacks"] = WITH_CALLBACKS
    rows, raw = [], {}
    for name in args.cases:
        case = CASES[name]
        pairs = args.pairs or case.steps
        images = case.batch_size * case.n_critic
        raw[name] = {"case": asdict(case), "pairs_per_run": pairs}
        for v, overrides in variants.items():
            timed: list[tuple[float, float]] = []
            for r in range(args.repeats):
                got = run_pairs(case, overrides, pairs, args.overrides, args.device)
                timed += got
                ratio = median([p / f for p, f in got])
                print(f"{name} {v} run {r}: ratio {ratio:.3f}  (load {load()})", flush=True)
            ratios = [p / f for p, f in timed]
            rows.append(
                {
                    "case": name,
                    "variant": v,
                    "plain images/s": images / median([p for p, _ in timed]),
                    "framework images/s": images / median([f for _, f in timed]),
                    "ratio (median)": median(ratios),
                    "ratio q1": float(torch.tensor(ratios).quantile(0.25)),
                    "ratio q3": float(torch.tensor(ratios).quantile(0.75)),
                    "pairs": len(ratios),
                }
            )
            raw[name][v] = {"plain_s": [p for p, _ in timed], "framework_s": [f for _, f in timed]}
        if args.profile:
            raw[name]["profile_top_ops"] = profile_step(case, args.overrides)
        # after every case, so a later failure keeps the figures measured so far
        write_json(
            args.out,
            {
                "benchmark": "train_step",
                "repeats": args.repeats,
                "overrides": args.overrides,
                "plain_device": args.device,
                "load_average_at_start": start_load,
                "load_average_at_end": load(),
                "results": rows,
                "seconds": raw,
            },
        )
    print()
    print_table(rows, list(rows[0]))


if __name__ == "__main__":
    main()
