"""What ``find_unused_parameters=True`` costs a GAN under DDP: two wrappings timed side by side.

An alternating update gives gradients to one network per backward pass. Two ways to run that
with DDP, both timed in the same processes on the same DCGAN pair and data:

- ``joint`` (what ganforge does through Lightning, which wraps the whole LightningModule in one
  DDP module): G and D in one DDP module with ``find_unused_parameters=True``; the network not
  being updated is frozen (``requires_grad=False``, as ``toggle_optimizer`` does).
- ``separate`` (the layout that avoids the flag, which Lightning's strategy does not offer):
  ``DDP(G)`` and ``DDP(D)`` with ``find_unused_parameters=False``; each backward pass reaches
  only the wrapped network that owns all its gradients.

One step = one D update (real + fake in one forward) and one G update, non-saturating loss.
Variants alternate within each repeat (order reversed every other repeat); the figure is the
median over repeats of joint's time per step divided by separate's.

    python benchmarks/ddp_unused.py                       # 2 CPU processes (gloo)
    python benchmarks/ddp_unused.py --world-size 2 --width 64 --steps 20 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from common import RESULTS, median, print_table, write_json
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel as DDP

from ganforge.nets import DCGANDiscriminator, DCGANGenerator

Step = Callable[[Tensor], None]


def d_loss(real_out: Tensor, fake_out: Tensor) -> Tensor:
    return F.softplus(-real_out).mean() + F.softplus(fake_out).mean()


class Joint(nn.Module):
    """G and D in one module; ``forward`` computes the loss of the network being updated."""

    def __init__(self, g: nn.Module, d: nn.Module):
        super().__init__()
        self.g, self.d = g, d

    def forward(self, real: Tensor, z: Tensor, update: str) -> Tensor:
        if update == "d":
            with torch.no_grad():
                fake = self.g(z)
            out = self.d(torch.cat([real, fake]))
            return d_loss(*out.chunk(2))
        return F.softplus(-self.d(self.g(z))).mean()


def frozen(net: nn.Module, frozen: bool) -> None:
    for p in net.parameters():
        p.requires_grad_(not frozen)


def joint_step(g: nn.Module, d: nn.Module, opt_g, opt_d, latent: int) -> Step:
    model = DDP(Joint(g, d), find_unused_parameters=True)

    def step(real: Tensor) -> None:
        z = torch.randn(real.shape[0], latent)
        for update, opt, other in (("d", opt_d, g), ("g", opt_g, d)):
            frozen(other, True)
            opt.zero_grad(set_to_none=True)
            model(real, z, update).backward()
            opt.step()
            frozen(other, False)

    return step


def separate_step(g: nn.Module, d: nn.Module, opt_g, opt_d, latent: int) -> Step:
    ddp_g, ddp_d = DDP(g), DDP(d)

    def step(real: Tensor) -> None:
        z = torch.randn(real.shape[0], latent)
        with torch.no_grad():
            fake = g(z)
        opt_d.zero_grad(set_to_none=True)
        d_loss(*ddp_d(torch.cat([real, fake])).chunk(2)).backward()
        opt_d.step()
        frozen(d, True)
        opt_g.zero_grad(set_to_none=True)
        F.softplus(-d(ddp_g(z))).mean().backward()
        opt_g.step()
        frozen(d, False)

    return step


def build(args: argparse.Namespace, make: Callable[..., Step]) -> Step:
    torch.manual_seed(0)
    g = DCGANGenerator(latent_dim=100, image_size=args.image_size, base_width=args.width)
    d = DCGANDiscriminator(image_size=args.image_size, base_width=args.width)
    adam = {"lr": 2e-4, "betas": (0.5, 0.999)}
    opt_g = torch.optim.Adam(g.parameters(), **adam)
    opt_d = torch.optim.Adam(d.parameters(), **adam)
    return make(g, d, opt_g, opt_d, 100)


def seconds_per_step(step: Step, real: Tensor, steps: int) -> float:
    for _ in range(2):  # warm-up
        step(real)
    dist.barrier()
    start = time.perf_counter()
    for _ in range(steps):
        step(real)
    dist.barrier()
    return (time.perf_counter() - start) / steps


def worker(rank: int, args: argparse.Namespace) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(args.port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=args.world_size)
    variants = {"joint": build(args, joint_step), "separate": build(args, separate_step)}
    real = torch.rand(args.batch_size, 1, args.image_size, args.image_size) * 2 - 1
    times: dict[str, list[float]] = {name: [] for name in variants}
    for repeat in range(args.repeats):
        order = list(variants) if repeat % 2 == 0 else list(reversed(variants))
        for name in order:
            times[name].append(seconds_per_step(variants[name], real, args.steps))
    if rank == 0:
        ratios = [j / s for j, s in zip(times["joint"], times["separate"], strict=True)]
        rows = [{"variant": name, "ms_per_step": 1000 * median(t)} for name, t in times.items()]
        print_table(rows, ["variant", "ms_per_step"])
        print(f"joint / separate time per step (median of {args.repeats}): {median(ratios):.3f}")
        settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        write_json(
            args.out, {"args": settings, "rows": rows, "joint_over_separate": median(ratios)}
        )
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world-size", type=int, default=2)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--port", type=int, default=29517)
    parser.add_argument("--out", type=Path, default=RESULTS / "ddp_unused.json")
    args = parser.parse_args()
    mp.spawn(worker, args=(args,), nprocs=args.world_size)


if __name__ == "__main__":
    main()
