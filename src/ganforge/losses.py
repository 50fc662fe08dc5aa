"""GAN objectives: one small class per loss variant, plus the gradient penalties.

Every loss reads the discriminator's raw outputs (logits for the probabilistic losses, critic
values for the Wasserstein ones) and is written with numerically stable functions. A new
variant is a subclass that overrides :meth:`GANLoss.d_loss` and :meth:`GANLoss.g_loss`, and a
YAML file in ``conf/loss/``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Critic = Callable[[Tensor], Tensor]


def _sum_of_squares_grad(outputs: Tensor, inputs: Tensor) -> Tensor:
    """Per-sample squared L2 norm of d(sum outputs)/d(inputs), kept in the graph."""
    (grad,) = torch.autograd.grad(outputs.sum(), inputs, create_graph=True)
    return grad.flatten(1).pow(2).sum(1)


def gradient_penalty(critic: Critic, real: Tensor, fake: Tensor) -> Tensor:
    """WGAN-GP penalty (Gulrajani et al. 2017): E[(||grad D(x_hat)||_2 - 1)^2].

    ``x_hat`` is a uniform random interpolate between a real and a fake sample, drawn per
    sample.
    """
    alpha = torch.rand(
        real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype
    )
    x_hat = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    grad_sq = _sum_of_squares_grad(critic(x_hat), x_hat)
    return (grad_sq.add(1e-12).sqrt() - 1).pow(2).mean()


def r1_penalty(critic: Critic, real: Tensor) -> Tensor:
    """R1 penalty (Mescheder et al. 2018): E[||grad D(x)||^2] on real data, without the 1/2."""
    x = real.detach().requires_grad_(True)
    return _sum_of_squares_grad(critic(x), x).mean()


def acgan_d_class_loss(real_logits: Tensor, fake_logits: Tensor, labels: Tensor) -> Tensor:
    """ACGAN's auxiliary term for D (Odena et al. 2017): classify real and fake samples as
    their labels (cross-entropy of D's class logits)."""
    return F.cross_entropy(real_logits, labels) + F.cross_entropy(fake_logits, labels)


def acgan_g_class_loss(fake_logits: Tensor, labels: Tensor) -> Tensor:
    """ACGAN's auxiliary term for G: make D classify the fakes as the labels they were drawn
    for."""
    return F.cross_entropy(fake_logits, labels)


class GANLoss(nn.Module):
    """Base of every GAN objective.

    Args:
        n_critic: discriminator updates per generator iteration.
        n_gen: generator updates per iteration, after its discriminator updates (2 in the
            DCGAN-TensorFlow loop the PacGAN and VEEGAN Stacked MNIST runs used, to keep D's
            loss from reaching zero); 1 is the plain alternation.
        r1_gamma: weight of the R1 penalty on real data (0 turns it off); the penalty enters
            the discriminator loss as ``r1_gamma / 2 * R1``.
        r1_every: lazy R1 (Karras et al. 2020, StyleGAN2): the penalty only on every
            ``r1_every``-th D update, weighted by ``r1_every`` so its average is unchanged;
            1 is plain R1 on every update.
        label_smoothing: one-sided label smoothing (Salimans et al. 2016): the target for real
            samples becomes ``1 - label_smoothing``; only the probabilistic losses use it.
    """

    #: whether the discriminator outputs are logits of P(real), so sigmoid gives D(x).
    probabilistic: bool = True

    def __init__(
        self,
        n_critic: int = 1,
        r1_gamma: float = 0.0,
        label_smoothing: float = 0.0,
        r1_every: int = 1,
        n_gen: int = 1,
    ):
        super().__init__()
        if n_critic < 1:
            raise ValueError(f"loss.n_critic must be >= 1, got {n_critic}")
        if n_gen < 1:
            raise ValueError(f"loss.n_gen must be >= 1, got {n_gen}")
        if r1_every < 1:
            raise ValueError(
                f"loss.r1_every must be >= 1 (1 = R1 on every D update), got {r1_every}"
            )
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"loss.label_smoothing must be in [0, 1), got {label_smoothing}")
        if label_smoothing and not self.probabilistic:
            raise ValueError(
                f"loss.label_smoothing={label_smoothing} has no effect on {type(self).__name__}, "
                "whose D outputs are not probabilities; use loss=nonsaturating or minimax, "
                "or set it to 0"
            )
        self.n_critic, self.n_gen = n_critic, n_gen
        self.r1_gamma, self.r1_every = r1_gamma, r1_every
        self.label_smoothing = label_smoothing

    @property
    def steps_per_iteration(self) -> int:
        """Optimizer steps in one generator iteration: Lightning's ``global_step`` per step."""
        return self.n_critic + self.n_gen

    @property
    def needs_penalty(self) -> bool:
        """True when the D loss needs gradients w.r.t. its inputs (so BatchNorm in D is wrong)."""
        return self.r1_gamma > 0

    def d_loss(self, real_out: Tensor, fake_out: Tensor) -> Tensor:
        """Discriminator loss from D's raw outputs on real and generated samples."""
        raise NotImplementedError

    def g_loss(self, fake_out: Tensor) -> Tensor:
        """Generator loss from D's raw outputs on generated samples."""
        raise NotImplementedError

    def penalty(self, critic: Critic, real: Tensor, fake: Tensor, step: int = 0) -> Tensor | None:
        """Regulariser added to the D loss of D update number ``step`` (counted from 0), or
        None when there is none at this update."""
        if self.r1_gamma > 0 and step % self.r1_every == 0:
            return 0.5 * self.r1_gamma * self.r1_every * r1_penalty(critic, real)
        return None

    def after_d_step(self, discriminator: nn.Module) -> None:
        """Hook run after each discriminator optimizer step (weight clipping uses it)."""

    def d_value(self, out: Tensor) -> Tensor:
        """What to report as D(.): a probability for probabilistic losses, else the critic."""
        return torch.sigmoid(out) if self.probabilistic else out

    @property
    def real_target(self) -> float:
        return 1.0 - self.label_smoothing

    def _real_bce(self, out: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(out, torch.full_like(out, self.real_target))


class MinimaxLoss(GANLoss):
    """The original saturating game (Goodfellow et al. 2014): G minimises log(1 - D(G(z)))."""

    def d_loss(self, real_out: Tensor, fake_out: Tensor) -> Tensor:
        return self._real_bce(real_out) + F.softplus(fake_out).mean()

    def g_loss(self, fake_out: Tensor) -> Tensor:
        # log(1 - sigmoid(l)) = -softplus(l)
        return -F.softplus(fake_out).mean()


class NonSaturatingLoss(MinimaxLoss):
    """The non-saturating heuristic (Goodfellow et al. 2014): G minimises -log D(G(z))."""

    def g_loss(self, fake_out: Tensor) -> Tensor:
        # -log(sigmoid(l)) = softplus(-l)
        return F.softplus(-fake_out).mean()


class LSGANLoss(GANLoss):
    """Least-squares GAN (Mao et al. 2017) with targets a (fake), b (real) and c (G's aim)."""

    probabilistic = False

    def __init__(self, a: float = 0.0, b: float = 1.0, c: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.a, self.b, self.c = a, b, c

    def d_loss(self, real_out: Tensor, fake_out: Tensor) -> Tensor:
        return 0.5 * ((real_out - self.b).pow(2).mean() + (fake_out - self.a).pow(2).mean())

    def g_loss(self, fake_out: Tensor) -> Tensor:
        return 0.5 * (fake_out - self.c).pow(2).mean()


class WGANLoss(GANLoss):
    """Wasserstein GAN (Arjovsky et al. 2017); ``clip_value`` clips D's weights after each step."""

    probabilistic = False

    def __init__(self, clip_value: float | None = 0.01, n_critic: int = 5, **kwargs):
        super().__init__(n_critic=n_critic, **kwargs)
        if clip_value is not None and clip_value <= 0:
            raise ValueError(
                f"loss.clip_value must be > 0 (or null for no clipping), got {clip_value}"
            )
        self.clip_value = clip_value

    def d_loss(self, real_out: Tensor, fake_out: Tensor) -> Tensor:
        return fake_out.mean() - real_out.mean()

    def g_loss(self, fake_out: Tensor) -> Tensor:
        return -fake_out.mean()

    @torch.no_grad()
    def after_d_step(self, discriminator: nn.Module) -> None:
        if self.clip_value is not None:
            for p in discriminator.parameters():
                p.clamp_(-self.clip_value, self.clip_value)


class WGANGPLoss(WGANLoss):
    """WGAN with gradient penalty (Gulrajani et al. 2017) instead of weight clipping."""

    def __init__(self, gp_weight: float = 10.0, n_critic: int = 5, **kwargs):
        super().__init__(clip_value=None, n_critic=n_critic, **kwargs)
        self.gp_weight = gp_weight

    @property
    def needs_penalty(self) -> bool:
        return True

    def penalty(self, critic: Critic, real: Tensor, fake: Tensor, step: int = 0) -> Tensor | None:
        gp = self.gp_weight * gradient_penalty(critic, real, fake)
        r1 = super().penalty(critic, real, fake, step)
        return gp if r1 is None else gp + r1


class HingeLoss(GANLoss):
    """Hinge loss (Lim & Ye 2017; Miyato et al. 2018)."""

    probabilistic = False

    def d_loss(self, real_out: Tensor, fake_out: Tensor) -> Tensor:
        return F.relu(1.0 - real_out).mean() + F.relu(1.0 + fake_out).mean()

    def g_loss(self, fake_out: Tensor) -> Tensor:
        return -fake_out.mean()


def feature_matching_loss(real_features: Tensor, fake_features: Tensor) -> Tensor:
    """Feature matching (Salimans et al. 2016, Sec. 3.1): ||E f(x) - E f(G(z))||_2^2, where
    ``f`` is an intermediate layer of D; used as the generator's objective instead of D's
    output, so G matches the statistics of real data rather than chasing D's current maximum."""
    return (real_features.detach().mean(0) - fake_features.mean(0)).pow(2).sum()
