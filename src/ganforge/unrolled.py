"""Unrolled GAN (Metz et al. 2017): G's loss against D as it will be after ``k`` more updates.

G's update sees a *functional copy* of D: its weights are advanced ``k`` optimizer steps on the
current real and fake batches (the same batches each step, as in the paper's toy code),
starting from D's weights and D's optimizer state (Adam moments, momentum buffers), without
touching either. With ``second_order`` the unrolled weights stay functions of G's samples, so
G's gradient flows through the unroll (the paper's method, double backward); without it G's
gradient is taken against the unrolled weights as constants (the paper's cheaper surrogate).
D's own update is unchanged; ``k = 0`` never calls this module, so it is the plain update.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call
from torch.optim import SGD, Adam, AdamW, Optimizer, RMSprop

if TYPE_CHECKING:
    from ganforge.module import GANModule

DiscriminatorFn = Callable[[Tensor, Tensor | None], Any]


def _split(out: Any) -> tuple[Tensor, Tensor | None]:
    return out if isinstance(out, tuple) else (out, None)


def _state(opt: Optimizer, p: Tensor, key: str) -> Tensor | None:
    value = opt.state.get(p, {}).get(key)
    return None if value is None else value.detach()


def functional_step(
    opt: Optimizer,
    params: Sequence[Tensor],
    new: Sequence[Tensor],
    grads: Sequence[Tensor],
    state: list[dict[str, Any]],
) -> list[Tensor]:
    """One step of ``opt``'s update rule on ``new`` (D's weights so far), out of place.

    ``params`` are D's real parameters (to find their group and optimizer state); ``state`` is
    the per-parameter running state of the unroll, initialised from ``opt`` and updated here.
    Supports Adam, AdamW, SGD (momentum, Nesterov) and RMSprop (momentum), the optimizers the
    configs in ``conf/optimizer`` build.
    """
    group_of = {p: g for g in opt.param_groups for p in g["params"]}
    out = []
    for p, w, g, s in zip(params, new, grads, state, strict=True):
        hp = group_of[p]
        lr, wd = hp["lr"], hp.get("weight_decay", 0.0)
        if isinstance(opt, Adam | AdamW):
            if hp.get("amsgrad"):
                raise ValueError("model.unrolled_steps does not support Adam with amsgrad=true")
            b1, b2 = hp["betas"]
            if isinstance(opt, AdamW):
                w = w * (1 - lr * wd)
            elif wd:
                g = g + wd * w
            s["t"] = s["t"] + 1
            s["m"] = b1 * s["m"] + (1 - b1) * g
            s["v"] = b2 * s["v"] + (1 - b2) * g * g
            v_hat = (s["v"] / (1 - b2 ** s["t"])).clamp_min(1e-30)  # finite d sqrt at v = 0
            w = w - lr / (1 - b1 ** s["t"]) * s["m"] / (v_hat.sqrt() + hp["eps"])
        elif isinstance(opt, SGD):
            if wd:
                g = g + wd * w
            mu = hp.get("momentum", 0.0)
            if mu:
                buf = s["buf"]
                buf = g if buf is None else mu * buf + (1 - hp.get("dampening", 0.0)) * g
                s["buf"] = buf
                g = g + mu * buf if hp.get("nesterov") else buf
            w = w - lr * g
        elif isinstance(opt, RMSprop):
            if hp.get("centered"):
                raise ValueError("model.unrolled_steps does not support RMSprop with centered=true")
            if wd:
                g = g + wd * w
            alpha = hp["alpha"]
            s["v"] = alpha * s["v"] + (1 - alpha) * g * g
            step = g / (s["v"].clamp_min(1e-30).sqrt() + hp["eps"])
            if hp.get("momentum", 0.0):
                s["buf"] = hp["momentum"] * s["buf"] + step
                step = s["buf"]
            w = w - lr * step
        else:
            raise ValueError(
                "model.unrolled_steps needs Adam, AdamW, SGD or RMSprop as the discriminator's "
                f"optimizer, got {type(opt).__name__}"
            )
        out.append(w)
    return out


def initial_state(opt: Optimizer, params: Sequence[Tensor]) -> list[dict[str, Any]]:
    """The unroll's copy of ``opt``'s running state for ``params`` (zeros where none yet)."""
    state = []
    for p in params:
        step = opt.state.get(p, {}).get("step", 0)
        t = float(step.item()) if isinstance(step, Tensor) else float(step)
        exp_avg = _state(opt, p, "exp_avg")
        sq = _state(opt, p, "exp_avg_sq")
        if sq is None:
            sq = _state(opt, p, "square_avg")
        buf = _state(opt, p, "momentum_buffer")
        zero = torch.zeros_like(p)
        if isinstance(opt, RMSprop) and buf is None:
            buf = zero
        state.append(
            {
                "t": t,
                "m": zero if exp_avg is None else exp_avg,
                "v": zero if sq is None else sq,
                "buf": buf,
            }
        )
    return state


def unrolled_discriminator(
    module: GANModule,
    opt_d: Optimizer,
    real: Tensor,
    fake: Tensor,
    y: Tensor | None,
    steps: int,
    second_order: bool = True,
) -> DiscriminatorFn:
    """D after ``steps`` unrolled updates on ``(real, fake)``, as a function ``(x, y) -> out``.

    Uses the module's loss (with its penalty, ACGAN term, weight clipping) and input
    transform exactly as :meth:`GANModule.discriminator_step` does. D's weights, buffers and
    optimizer state are left as they are (BatchNorm statistics are updated on a copy).
    """
    d = module.discriminator
    loss_fn = module.loss
    names, params = zip(*d.named_parameters(), strict=True)
    buffers = {n: b.clone() for n, b in d.named_buffers()}
    weights = [p.detach().requires_grad_(True) for p in params]
    state = initial_state(opt_d, params)
    fake_d = fake if second_order else fake.detach()
    clip = getattr(loss_fn, "clip_value", None)

    def call(ws: Sequence[Tensor], x: Tensor, labels: Tensor | None) -> Any:
        return functional_call(d, ({**dict(zip(names, ws, strict=True)), **buffers}), (x, labels))

    for k in range(steps):
        real_in, fake_in = module._d_input(real), module._d_input(fake_d)
        real_out, real_cls = _split(call(weights, real_in, y))
        fake_out, fake_cls = _split(call(weights, fake_in, y))
        loss = loss_fn.d_loss(real_out, fake_out)
        penalty = loss_fn.penalty(
            lambda x, ws=weights: _split(call(ws, x, y))[0], real_in, fake_in, module.d_step + k
        )
        if penalty is not None:
            loss = loss + penalty
        if real_cls is not None:
            aux = F.cross_entropy(real_cls, y) + F.cross_entropy(fake_cls, y)
            loss = loss + module.aux_weight * aux
        grads = torch.autograd.grad(loss, weights, create_graph=second_order)
        weights = functional_step(opt_d, params, weights, grads, state)
        if clip is not None:  # WGAN's weight clipping after each D step
            weights = [w.clamp(-clip, clip) for w in weights]
        if not second_order:
            weights = [w.detach().requires_grad_(True) for w in weights]
    final = weights if second_order else [w.detach() for w in weights]
    return lambda x, labels: call(final, x, labels)
