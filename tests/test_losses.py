"""Every GAN objective against its formula, the penalties against closed forms and autograd."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ganforge.losses import (
    HingeLoss,
    LSGANLoss,
    MinimaxLoss,
    NonSaturatingLoss,
    WGANGPLoss,
    WGANLoss,
    gradient_penalty,
    r1_penalty,
)
from ganforge.nets import DCGANDiscriminator

REAL = [2.0, -1.0, 0.5, 4.0]
FAKE = [-3.0, 0.0, 1.5, -0.5]


def sig(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


# (loss, D loss formula, G loss formula), each formula written out per sample
CASES = [
    (
        MinimaxLoss(),
        lambda r, f: -mean(math.log(sig(v)) for v in r) - mean(math.log(1 - sig(v)) for v in f),
        lambda f: mean(math.log(1 - sig(v)) for v in f),
    ),
    (
        NonSaturatingLoss(),
        lambda r, f: -mean(math.log(sig(v)) for v in r) - mean(math.log(1 - sig(v)) for v in f),
        lambda f: -mean(math.log(sig(v)) for v in f),
    ),
    (
        LSGANLoss(a=0.0, b=1.0, c=1.0),
        lambda r, f: 0.5 * mean((v - 1) ** 2 for v in r) + 0.5 * mean(v**2 for v in f),
        lambda f: 0.5 * mean((v - 1) ** 2 for v in f),
    ),
    (
        LSGANLoss(a=-1.0, b=1.0, c=0.0),
        lambda r, f: 0.5 * mean((v - 1) ** 2 for v in r) + 0.5 * mean((v + 1) ** 2 for v in f),
        lambda f: 0.5 * mean(v**2 for v in f),
    ),
    (WGANLoss(), lambda r, f: mean(f) - mean(r), lambda f: -mean(f)),
    (WGANGPLoss(), lambda r, f: mean(f) - mean(r), lambda f: -mean(f)),
    (
        HingeLoss(),
        lambda r, f: mean(max(0.0, 1 - v) for v in r) + mean(max(0.0, 1 + v) for v in f),
        lambda f: -mean(f),
    ),
]


CASE_IDS = ["minimax", "nonsaturating", "lsgan_0_1_1", "lsgan_-1_1_0", "wgan", "wgan_gp", "hinge"]


@pytest.mark.parametrize(("loss", "d_formula", "g_formula"), CASES, ids=CASE_IDS)
def test_loss_values_equal_their_formulas(loss, d_formula, g_formula):
    real, fake = torch.tensor(REAL, dtype=torch.float64), torch.tensor(FAKE, dtype=torch.float64)
    assert loss.d_loss(real, fake).item() == pytest.approx(d_formula(REAL, FAKE), rel=1e-12)
    assert loss.g_loss(fake).item() == pytest.approx(g_formula(FAKE), rel=1e-12)


@pytest.mark.parametrize("cls", [MinimaxLoss, NonSaturatingLoss])
def test_one_sided_label_smoothing_only_softens_the_real_target(cls):
    s = 0.1
    loss = cls(label_smoothing=s)
    real, fake = torch.tensor(REAL, dtype=torch.float64), torch.tensor(FAKE, dtype=torch.float64)
    expected = -mean((1 - s) * math.log(sig(v)) + s * math.log(1 - sig(v)) for v in REAL) - mean(
        math.log(1 - sig(v)) for v in FAKE
    )
    assert loss.d_loss(real, fake).item() == pytest.approx(expected, rel=1e-12)


def test_saturating_generator_gradient_vanishes_for_a_confident_discriminator():
    """d/dl log(1 - sigmoid(l)) = -sigmoid(l) -> 0 as D(G(z)) = sigmoid(l) -> 0, while
    d/dl -log sigmoid(l) = -(1 - sigmoid(l)) -> -1 (Goodfellow et al. 2014, section 3)."""
    logits = [-12.0, -6.0, -2.0, 0.0]
    n = len(logits)
    grads = {}
    for loss in (MinimaxLoss(), NonSaturatingLoss()):
        fake = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
        loss.g_loss(fake).backward()
        grads[type(loss)] = fake.grad.tolist()
    for i, v in enumerate(logits):
        assert grads[MinimaxLoss][i] == pytest.approx(-sig(v) / n, rel=1e-9)
        assert grads[NonSaturatingLoss][i] == pytest.approx(-(1 - sig(v)) / n, rel=1e-9)
    # confident D (D(G(z)) ~ 6e-6): the saturating gradient is ~1e5 times smaller
    assert abs(grads[MinimaxLoss][0]) < 1e-5 / n
    assert abs(grads[NonSaturatingLoss][0]) > 0.99 / n
    # and the saturating gradient grows as D(G(z)) grows, the non-saturating one shrinks
    assert [abs(g) for g in grads[MinimaxLoss]] == sorted(abs(g) for g in grads[MinimaxLoss])
    assert [abs(g) for g in grads[NonSaturatingLoss]] == sorted(
        (abs(g) for g in grads[NonSaturatingLoss]), reverse=True
    )


def linear_critic(weight: torch.Tensor) -> nn.Module:
    """D(x) = <w, flatten(x)> + b: its input gradient is w everywhere."""
    critic = nn.Sequential(nn.Flatten(), nn.Linear(weight.numel(), 1, dtype=weight.dtype))
    with torch.no_grad():
        critic[1].weight.copy_(weight.view(1, -1))
        critic[1].bias.fill_(0.3)
    return critic


def test_wgan_gp_penalty_on_a_linear_critic_is_closed_form():
    torch.manual_seed(0)
    w = torch.randn(2, 3, 3, dtype=torch.float64)
    critic = linear_critic(w)
    real = torch.randn(5, 2, 3, 3, dtype=torch.float64)
    fake = torch.randn(5, 2, 3, 3, dtype=torch.float64)
    expected = 10.0 * (w.norm().item() - 1.0) ** 2
    assert WGANGPLoss(gp_weight=10.0).penalty(critic, real, fake).item() == pytest.approx(expected)
    # the penalty is zero exactly for a unit-norm gradient
    unit = linear_critic(w / w.norm())
    assert gradient_penalty(unit, real, fake).item() == pytest.approx(0.0, abs=1e-12)


def test_wgan_gp_penalty_matches_per_sample_autograd_on_a_nonlinear_critic():
    torch.manual_seed(1)
    critic = nn.Sequential(nn.Flatten(), nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1)).double()
    real, fake = torch.randn(6, 2, 2, 2).double(), torch.randn(6, 2, 2, 2).double()
    torch.manual_seed(7)
    penalty = gradient_penalty(critic, real, fake)
    torch.manual_seed(7)  # the same interpolation weights, drawn the same way
    alpha = torch.rand(6, 1, 1, 1, dtype=torch.float64)
    expected = []
    for x_hat in alpha * real + (1 - alpha) * fake:
        x = x_hat.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(critic(x.unsqueeze(0)).sum(), x)
        expected.append((g.norm().item() - 1) ** 2)
    assert penalty.item() == pytest.approx(mean(expected), rel=1e-9)
    # it stays in the graph: the penalty trains the critic
    penalty.backward()
    assert critic[1].weight.grad.abs().sum() > 0


def test_r1_penalty_closed_forms_and_weighting():
    torch.manual_seed(2)
    w = torch.randn(1, 4, 4, dtype=torch.float64)
    real = torch.randn(3, 1, 4, 4, dtype=torch.float64)
    assert r1_penalty(linear_critic(w), real).item() == pytest.approx(w.pow(2).sum().item())

    def quadratic(x):  # D(x) = sum x^2, grad = 2x, so R1 = E[4 ||x||^2]
        return x.pow(2).flatten(1).sum(1)

    expected = mean(4 * x.pow(2).sum().item() for x in real)
    assert r1_penalty(quadratic, real).item() == pytest.approx(expected)
    fake = torch.randn_like(real)
    loss = NonSaturatingLoss(r1_gamma=10.0)
    assert loss.needs_penalty
    assert loss.penalty(quadratic, real, fake).item() == pytest.approx(5.0 * expected)
    assert NonSaturatingLoss().penalty(quadratic, real, fake) is None
    assert not NonSaturatingLoss().needs_penalty
    # R1 adds to WGAN-GP's penalty; R1 only looks at real data
    both = WGANGPLoss(r1_gamma=2.0).penalty(linear_critic(w), real, fake).item()
    gp = 10.0 * (w.norm().item() - 1) ** 2
    assert both == pytest.approx(gp + 1.0 * w.pow(2).sum().item())


@pytest.mark.parametrize("spectral_norm", [False, True])
def test_weight_clipping_bounds_every_discriminator_parameter_after_a_step(spectral_norm):
    torch.manual_seed(3)
    d = DCGANDiscriminator(channels=1, image_size=16, base_width=4, spectral_norm=spectral_norm)
    loss = WGANLoss(clip_value=0.01)
    opt = torch.optim.RMSprop(d.parameters(), lr=0.5)  # a big step leaves the bound
    real, fake = torch.randn(8, 1, 16, 16), torch.randn(8, 1, 16, 16)
    loss.d_loss(d(real), d(fake)).backward()
    opt.step()
    assert max(p.abs().max().item() for p in d.parameters()) > 0.01
    loss.after_d_step(d)
    assert max(p.abs().max().item() for p in d.parameters()) <= 0.01


def test_bad_loss_settings_are_rejected_with_their_name():
    with pytest.raises(ValueError, match="n_critic"):
        HingeLoss(n_critic=0)
    with pytest.raises(ValueError, match="label_smoothing"):
        MinimaxLoss(label_smoothing=1.0)
    with pytest.raises(ValueError, match="clip_value"):
        WGANLoss(clip_value=-0.01)


def test_label_smoothing_is_refused_where_it_would_do_nothing():
    with pytest.raises(ValueError, match=r"label_smoothing=0\.1 has no effect on HingeLoss"):
        HingeLoss(label_smoothing=0.1)
    with pytest.raises(ValueError, match="LSGANLoss"):
        LSGANLoss(label_smoothing=0.1)


def test_lazy_r1_applies_the_scaled_penalty_every_r1_every_d_updates():
    torch.manual_seed(4)
    w = torch.randn(1, 4, 4, dtype=torch.float64)
    real = torch.randn(3, 1, 4, 4, dtype=torch.float64)
    plain = NonSaturatingLoss(r1_gamma=10.0).penalty(linear_critic(w), real, real).item()
    lazy = NonSaturatingLoss(r1_gamma=10.0, r1_every=4)
    values = [lazy.penalty(linear_critic(w), real, real, step) for step in range(8)]
    assert [v is not None for v in values] == [True, False, False, False] * 2
    assert values[4].item() == pytest.approx(4 * plain)  # the same penalty on average
    both = WGANGPLoss(r1_gamma=2.0, r1_every=2).penalty(linear_critic(w), real, real, 1)
    assert both.item() == pytest.approx(10.0 * (w.norm().item() - 1) ** 2)  # GP only
    with pytest.raises(ValueError, match=r"loss\.r1_every must be >= 1"):
        NonSaturatingLoss(r1_every=0)
