"""Discriminator remedies for mode collapse that let D look at several samples at once.

- :class:`MinibatchDiscrimination` (Salimans et al. 2016): each sample's features are projected
  by a tensor ``T`` to ``num_kernels`` rows of ``kernel_dim``; a sample gets, per kernel, the
  sum over the *other* samples of ``exp(-L1 distance)`` between their rows. A collapsed batch
  (all samples alike) gives large values, which D learns to reject.
- :class:`MinibatchStdDev` (Karras et al. 2018): the cheap variant; one extra feature per
  sample, the standard deviation of the features over a group of ``group_size`` samples,
  averaged over features. (Karras et al. compute it on the last 4x4 feature maps; here it is
  computed on D's flattened penultimate features, so one layer serves every architecture.)
- :func:`pack` (PacGAN, Lin et al. 2018): D judges ``m`` samples at once; see its docstring
  for the grouping.

Both minibatch layers map features ``(B, F)`` to ``(B, F + extra)`` and sit between D's body
and its output head. Under DDP the "minibatch" is each process's local batch.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

MINIBATCH_KINDS = ("discrimination", "stddev")


class MinibatchDiscrimination(nn.Module):
    """Salimans et al. 2016, Sec. 3.2: appends ``num_kernels`` closeness features to ``(B, F)``.

    Closeness ``exp(-L1)`` only discriminates when the L1 distances between samples are of
    order one. D's features are far smaller at the start (a freshly initialised D puts every
    pair of samples at L1 << 1, so every feature is about ``B - 1``, whatever the batch), so,
    as in the authors' code, the first training forward sets a per-kernel distance scale that
    makes the batch's mean nearest-neighbour distance 2, and a per-kernel bias that centres the
    features on that batch. Both are then learned. Under DDP the two statistics are averaged
    over the processes, so every rank starts from the same parameters.

    ``init_distance`` is that mean nearest-neighbour distance in the scaled units (the authors'
    2). Smaller values widen the kernels: closeness then also counts samples well beyond each
    one's nearest neighbour (for data whose modes are tight clusters, neighbours in the same mode
    rather than only the nearest few).
    """

    def __init__(
        self,
        in_features: int,
        num_kernels: int = 100,
        kernel_dim: int = 5,
        init_distance: float = 2.0,
    ):
        super().__init__()
        if num_kernels < 1 or kernel_dim < 1:
            raise ValueError(
                f"minibatch discrimination needs num_kernels >= 1 and kernel_dim >= 1, got "
                f"num_kernels={num_kernels}, kernel_dim={kernel_dim}"
            )
        if not init_distance > 0:
            raise ValueError(
                f"minibatch discrimination needs init_distance > 0, got {init_distance!r}"
            )
        self.num_kernels, self.kernel_dim = num_kernels, kernel_dim
        self.init_distance = float(init_distance)
        self.out_features = in_features + num_kernels
        self.T = nn.Parameter(torch.randn(in_features, num_kernels * kernel_dim))
        nn.init.normal_(self.T, 0.0, 1.0 / math.sqrt(in_features))
        self.log_scale = nn.Parameter(torch.zeros(num_kernels))
        self.bias = nn.Parameter(torch.zeros(num_kernels))
        self.register_buffer("initialized", torch.tensor(False))
        # a Python mirror of the buffer: compiled forwards guard on it instead of reading a tensor
        self._initialized = False

    def forward(self, h: Tensor) -> Tensor:
        m = (h @ self.T).view(-1, self.num_kernels, self.kernel_dim).transpose(0, 1)  # (K, B, D)
        l1 = torch.cdist(m, m, p=1.0)  # (K, B, B), without a (B, B, K, D) intermediate
        if self.training and not self._initialized and h.shape[0] > 1:
            self._initialize(l1.detach())
        o = _closeness(l1, self.log_scale).T + self.bias  # (B, K)
        return torch.cat([h, o.to(h.dtype)], dim=1)

    @torch.compiler.disable
    @torch.no_grad()
    def _initialize(self, l1: Tensor) -> None:
        """Set the distance scale and the bias from the first training batch's distances."""
        l1 = l1.float()
        others = l1 + torch.diag(torch.full((l1.shape[1],), math.inf, device=l1.device))
        nearest = _mean_over_ranks(others.min(2).values.mean(1))  # (K,)
        self.log_scale.copy_(torch.log(self.init_distance / nearest.clamp_min(1e-12)))
        self.bias.copy_(-_mean_over_ranks(_closeness(l1, self.log_scale).mean(1)))
        self.initialized.fill_(True)
        self._initialized = True

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        # checkpoints from before the scale and bias: the layer as it was (scale 1, bias 0)
        for name, value in (("log_scale", 0.0), ("bias", 0.0)):
            state_dict.setdefault(prefix + name, torch.full((self.num_kernels,), value))
        state_dict.setdefault(prefix + "initialized", torch.tensor(True))
        super()._load_from_state_dict(state_dict, prefix, *args)
        self._initialized = bool(self.initialized)


def _closeness(l1: Tensor, log_scale: Tensor) -> Tensor:
    """Per kernel and sample, the sum over the other samples of ``exp(-scaled L1)``: ``(K, B)``.

    The exponent is capped at 80: beyond about 87, float32 ``exp`` underflows and takes a
    scalar slow path (50x slower on CPU), and the terms it would add are below 1e-34.
    """
    scaled = (l1 * log_scale.exp()[:, None, None]).clamp_max(80.0)
    # the sum over all j includes j = i with exp(0) = 1; remove it
    return torch.exp(-scaled).sum(2) - 1.0


def _mean_over_ranks(x: Tensor) -> Tensor:
    """``x`` averaged over the DDP processes (``x`` itself in a single process)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        x = x.clone()
        torch.distributed.all_reduce(x)
        x /= torch.distributed.get_world_size()
    return x


class MinibatchStdDev(nn.Module):
    """Karras et al. 2018, Sec. 3: appends the mean feature std over a group of samples.

    Groups are consecutive samples; ``group_size`` 0, or one that does not divide the batch,
    uses the whole batch as one group.
    """

    def __init__(self, in_features: int, group_size: int = 4):
        super().__init__()
        if group_size < 0:
            raise ValueError(f"minibatch stddev group_size must be >= 0, got {group_size}")
        self.group_size = group_size
        self.out_features = in_features + 1

    def forward(self, h: Tensor) -> Tensor:
        b = h.shape[0]
        g = self.group_size if self.group_size and b % self.group_size == 0 else b
        if g < 2:  # a std needs two samples
            return torch.cat([h, torch.zeros_like(h[:, :1])], dim=1)
        std = h.view(b // g, g, -1).var(1, unbiased=False).add(1e-8).sqrt().mean(1)  # (B/g,)
        return torch.cat([h, std.repeat_interleave(g).unsqueeze(1)], dim=1)


def minibatch_layer(spec: str | dict[str, Any] | None, in_features: int) -> nn.Module | None:
    """The layer ``model.discriminator.minibatch`` names, or None.

    ``spec`` is ``null``, a kind (``discrimination`` or ``stddev``) or a mapping with ``kind``
    and that layer's arguments, e.g. ``{kind: discrimination, num_kernels: 50, kernel_dim: 5}``.
    """
    if spec is None:
        return None
    options = {"kind": spec} if isinstance(spec, str) else dict(spec)
    kind = options.pop("kind", None)
    if kind == "discrimination":
        return MinibatchDiscrimination(in_features, **options)
    if kind == "stddev":
        return MinibatchStdDev(in_features, **options)
    raise ValueError(
        f"model.discriminator.minibatch must be null, one of {MINIBATCH_KINDS} or a mapping "
        f"with kind: one of them; got {spec!r}"
    )


def check_pack(pack: int, conditioning: str) -> int:
    """Validate ``model.discriminator.pack`` against the conditioning mode."""
    if not isinstance(pack, int) or pack < 1:
        raise ValueError(f"model.discriminator.pack must be an integer >= 1, got {pack!r}")
    if pack > 1 and conditioning not in ("none", "concat"):
        raise ValueError(
            f"model.discriminator.pack={pack} gives one D output per group of {pack} samples, "
            f"which has no single label for conditioning={conditioning!r}; use conditioning "
            "none or concat"
        )
    return pack


def pack(x: Tensor, m: int) -> Tensor:
    """PacGAN packing: ``(B, C, ...)`` -> ``(B / m, m * C, ...)``.

    Group ``g`` holds samples ``g*m, ..., g*m + m - 1`` (consecutive samples of the batch),
    concatenated along the channel (feature) axis in that order: channels ``j*C .. j*C + C - 1``
    of group ``g`` are sample ``g*m + j``. Real and fake batches are packed separately, so a
    group is all real or all fake, as in Lin et al. 2018. ``m = 1`` returns ``x`` itself.
    """
    if m == 1:
        return x
    b = x.shape[0]
    if b % m:
        raise ValueError(
            f"model.discriminator.pack={m} needs batches divisible by {m}, got a batch of {b}"
        )
    return x.reshape(b // m, m * x.shape[1], *x.shape[2:])
