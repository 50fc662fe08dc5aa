"""The generator's exponential moving average (EMA): the update, its ramp-up, and standing
BatchNorm statistics for the averaged weights.

- :func:`ema_update` is ``AveragedModel.update_parameters`` with an EMA: torch's version reads
  ``n_averaged`` back to the host at every update (a GPU sync per step), and its averaging
  function is a closure that the spawn launcher of a multi-process run cannot pickle.
- :func:`ema_beta` is StyleGAN2-ADA's schedule (``ema_kimg`` / ``ema_rampup`` in its
  ``training_loop.py``): the average's half-life is given in images and grows with the images
  seen, so a short run is not dominated by its first, near-random weights.
- :func:`standing_stats` recomputes BatchNorm's running statistics for a set of weights (the
  "standing statistics" of BigGAN, Brock et al. 2019): averaged weights paired with averaged
  running statistics do not describe the same network.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.optim.swa_utils import AveragedModel

from ganforge.noise import latent_noise


@torch.no_grad()
def ema_update(averaged: AveragedModel, current: nn.Module, decay: float, first: bool) -> None:
    """``averaged = decay * averaged + (1 - decay) * current`` for the parameters (and, with
    ``use_buffers``, the buffers) of ``averaged.module``; ``first`` copies ``current``.

    Integer buffers (BatchNorm's ``num_batches_tracked``) are copied. Nothing is read back to
    the host, so a GPU step stays free of synchronisation.
    """

    def tensors(net: nn.Module) -> list[Tensor]:
        return [*net.parameters(), *(net.buffers() if averaged.use_buffers else ())]

    pairs = list(zip(tensors(averaged.module), tensors(current), strict=True))
    floats = [(a, c.detach()) for a, c in pairs if a.is_floating_point()]
    if floats:
        mine, theirs = map(list, zip(*floats, strict=True))
        torch._foreach_lerp_(mine, theirs, 1.0 if first else 1.0 - decay)
    for a, c in pairs:
        if not a.is_floating_point():
            a.copy_(c)
    averaged.n_averaged += 1


def ema_beta(
    batch_images: int, images_seen: int, half_life_kimg: float, rampup: float | None
) -> float:
    """The per-step decay for a half-life of ``half_life_kimg`` thousand images.

    With ``rampup``, the half-life is at most ``rampup * images_seen`` (StyleGAN2-ADA uses
    0.05), so early in a run the average forgets fast; ``batch_images`` is the global batch.
    """
    half_life = half_life_kimg * 1000.0
    if rampup is not None:
        half_life = min(half_life, images_seen * rampup)
    return 0.5 ** (batch_images / max(half_life, 1e-8))


def has_batchnorm(net: nn.Module) -> bool:
    return any(isinstance(m, _BatchNorm) for m in net.modules())


@torch.no_grad()
def standing_stats(
    net: nn.Module,
    latent_dim: int,
    num_classes: int,
    batches: int = 8,
    batch_size: int = 256,
    seed: int = 0,
    prior: str = "normal",
) -> nn.Module:
    """A copy of generator ``net`` whose BatchNorm running statistics are the exact means over
    ``batches`` batches of its own outputs on fixed noise (and uniform labels), in eval mode.

    The noise comes from a ``torch.Generator`` seeded with ``seed``, so the copy is the same on
    every rank and in every process that rebuilds it, and training's RNG is not touched.
    """
    standing = copy.deepcopy(net)
    device = next(standing.parameters()).device
    bns = [m for m in standing.modules() if isinstance(m, _BatchNorm)]
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average: every batch counts the same
    standing.train()
    gen = torch.Generator().manual_seed(seed)
    for _ in range(batches):
        z = latent_noise(batch_size, latent_dim, gen, prior=prior).to(device)
        y = torch.randint(num_classes, (batch_size,), generator=gen) if num_classes else None
        standing(z, None if y is None else y.to(device))
    for bn, momentum in zip(bns, momenta, strict=True):
        bn.momentum = momentum
    return standing.eval()
