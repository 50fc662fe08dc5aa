"""The GAN LightningModule: update schedule, gradient isolation, and that it actually learns."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch import nn

from ganforge.data.loader import TensorBatches
from ganforge.losses import NonSaturatingLoss, WGANGPLoss
from ganforge.module import GANModule
from ganforge.nets import VectorDiscriminator, VectorGenerator


class PointData(L.LightningDataModule):
    """Samples of a 1-D Gaussian N(mean, std), served by the in-memory loader."""

    def __init__(self, mean: float, std: float, n: int = 4096, batch_size: int = 128, k: int = 1):
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.x = mean + std * torch.randn(n, 1, generator=gen)
        self.batch_size, self.k = batch_size, k

    def train_dataloader(self) -> TensorBatches:
        return TensorBatches(
            self.x, torch.zeros(len(self.x), dtype=torch.long), self.batch_size * self.k
        )


def adam(lr: float = 1e-3, betas: tuple[float, float] = (0.5, 0.999)):
    return lambda params: torch.optim.Adam(params, lr=lr, betas=betas)


def point_gan(loss=None, lr: float = 1e-3) -> GANModule:
    torch.manual_seed(0)
    return GANModule(
        VectorGenerator(latent_dim=4, dim=1, hidden=(32, 32)),
        VectorDiscriminator(dim=1, hidden=(32, 32)),
        loss or NonSaturatingLoss(),
        optimizer_g=adam(lr),
        optimizer_d=adam(lr),
        num_fixed_samples=8,
    )


def fit(module: GANModule, data: L.LightningDataModule, callbacks=(), **kwargs) -> L.Trainer:
    trainer = L.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=list(callbacks),
        **kwargs,
    )
    trainer.fit(module, datamodule=data)
    return trainer


class GradientAudit(L.Callback):
    """Records, at every optimizer step, which networks hold gradients."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, bool, bool]] = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        which = "d" if optimizer is trainer.optimizers[0] else "g"

        def has_grad(net: nn.Module) -> bool:
            return any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())

        self.steps.append((which, has_grad(pl_module.generator), has_grad(pl_module.discriminator)))


@pytest.mark.parametrize(("k", "u"), [(1, 1), (3, 1), (1, 2), (2, 3)])
def test_each_iteration_makes_n_critic_d_steps_then_n_gen_g_steps(k: int, u: int) -> None:
    module = point_gan(WGANGPLoss(n_critic=k, n_gen=u))
    audit = GradientAudit()
    trainer = fit(
        module, PointData(0.0, 1.0, n=512, batch_size=32, k=k), [audit], max_steps=4 * (k + u)
    )
    d_opt, g_opt = trainer.optimizers
    d_steps = {int(s["step"]) for s in d_opt.state.values()}
    g_steps = {int(s["step"]) for s in g_opt.state.values()}
    assert g_steps == {4 * u} and d_steps == {4 * k}
    assert [w for w, _, _ in audit.steps] == (["d"] * k + ["g"] * u) * 4
    assert module.g_step == 4 and trainer.global_step == 4 * (k + u)
    assert module.d_step == 4 * k


def test_extra_generator_updates_move_g_further_against_the_same_d() -> None:
    """n_gen=2 makes a second G update per iteration, on the iteration's noise, after the
    first: G moves further (towards D's real side) than with one update from the same start."""
    moved = []
    for n_gen in (1, 2):
        module = point_gan(NonSaturatingLoss(n_gen=n_gen), lr=1e-2)
        start = module.sample(1000, generator=torch.Generator().manual_seed(0))[0].mean()
        fit(module, PointData(3.0, 0.5, n=64, batch_size=64), max_steps=1 + n_gen)
        after = module.sample(1000, generator=torch.Generator().manual_seed(0))[0].mean()
        moved.append(float(after - start))  # towards the data's mean 3.0
    assert moved[1] > 1.5 * moved[0] > 0


def test_gradients_do_not_leak_between_networks() -> None:
    audit = GradientAudit()
    fit(point_gan(), PointData(0.0, 1.0, n=256, batch_size=32), [audit], max_steps=6)
    for which, g_has, d_has in audit.steps:
        if which == "d":
            assert d_has and not g_has, "D's update saw gradients in G"
        else:
            assert g_has and not d_has, "G's update left gradients in D"


def test_generator_learns_a_1d_gaussian() -> None:
    target_mean, target_std = 3.0, 0.5
    module = point_gan(lr=2e-3)
    before = module.sample(2000, generator=torch.Generator().manual_seed(1))[0]
    assert abs(before.mean() - target_mean) > 2.0  # starts far from the target
    fit(module, PointData(target_mean, target_std), max_epochs=40)
    after = module.sample(4000, generator=torch.Generator().manual_seed(1))[0]
    assert after.mean().item() == pytest.approx(target_mean, abs=0.25)
    assert after.std().item() == pytest.approx(target_std, abs=0.25)


def test_removing_the_generator_step_stops_learning(monkeypatch) -> None:
    module = point_gan(lr=2e-3)
    monkeypatch.setattr(module, "generator_step", lambda opt, fake, y, real=None: {})
    fit(module, PointData(3.0, 0.5), max_epochs=40)
    after = module.sample(4000, generator=torch.Generator().manual_seed(1))[0]
    assert abs(after.mean().item() - 3.0) > 2.0


def test_sampling_leaves_the_global_rng_untouched() -> None:
    module = point_gan()
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    module.sample(16, generator=torch.Generator().manual_seed(0))
    assert torch.equal(torch.rand(3), expected)


def test_fixed_noise_is_a_checkpointed_buffer() -> None:
    module = point_gan()
    assert "fixed_noise" in module.state_dict()
    assert torch.equal(point_gan().fixed_noise, module.fixed_noise)


def test_adam_betas_written_with_an_int_train() -> None:
    """``model.optimizer_g.betas=[0,0.99]`` reaches Adam as floats (torch refuses int and
    float mixed): the optimizer is built and steps."""
    from functools import partial

    from omegaconf import OmegaConf

    module = point_gan()
    betas = OmegaConf.create({"betas": [0, 0.99]}).betas  # as Hydra passes a CLI list
    module.optimizer_g = partial(torch.optim.Adam, lr=1e-3, betas=betas)
    trainer = fit(module, PointData(0.0, 1.0, n=256), max_steps=4)
    assert trainer.optimizers[1].param_groups[0]["betas"] == (0.0, 0.99)


def test_the_penalty_sees_the_count_of_discriminator_updates() -> None:
    """Lazy R1 counts D updates: with n_critic=2, three generator steps are D updates 0..5."""
    seen: list[int] = []

    class Recording(NonSaturatingLoss):
        def penalty(self, critic, real, fake, step=0):
            seen.append(step)
            return super().penalty(critic, real, fake, step)

    module = point_gan(Recording(n_critic=2, r1_gamma=1.0, r1_every=2))
    fit(module, PointData(0.0, 1.0, n=512, k=2), max_steps=9)
    assert seen == [0, 1, 2, 3, 4, 5]
    seen.clear()  # extra generator updates are not D updates
    module = point_gan(Recording(n_critic=2, n_gen=3, r1_gamma=1.0, r1_every=2))
    fit(module, PointData(0.0, 1.0, n=512, k=2), max_steps=15)
    assert seen == [0, 1, 2, 3, 4, 5]


@pytest.mark.parametrize("log_steps", [True, False])
def test_log_steps_false_skips_lightnings_step_logging(log_steps: bool) -> None:
    module = point_gan()
    module.log_steps = log_steps
    outputs: list[dict] = []

    class Outputs(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, out, batch, batch_idx) -> None:
            outputs.append(out)

    trainer = fit(module, PointData(0.0, 1.0, n=256), [Outputs()], max_steps=4)
    assert ("loss/g" in trainer.callback_metrics) is log_steps
    assert len(outputs) == 2 and all("loss/g" in o and "grad_norm/d" in o for o in outputs)
