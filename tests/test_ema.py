"""The generator's EMA: the ramped half-life, standing BatchNorm statistics, and a short run in
which the average is not worse than the generator it averages (issue 18)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ganforge.ema import ema_beta, standing_stats
from ganforge.errors import GanforgeError
from ganforge.losses import NonSaturatingLoss
from ganforge.module import GANModule
from ganforge.nets import DCGANGenerator, VectorDiscriminator, VectorGenerator
from ganforge.run import train
from tests.conftest import QUIET_RUN, TINY_DCGAN, compose_config
from tests.test_module import PointData, adam, fit


def test_half_life_is_in_images_and_ramps_up_with_the_images_seen() -> None:
    # after half_life images (half_life / batch steps) the old weights keep half their weight
    beta = ema_beta(64, images_seen=10**9, half_life_kimg=10, rampup=0.05)
    assert beta ** (10_000 / 64) == pytest.approx(0.5)
    # early on the half-life is rampup * images seen: 0.05 * 6,400 = 320 images = 5 steps
    early = ema_beta(64, images_seen=6_400, half_life_kimg=10, rampup=0.05)
    assert early**5 == pytest.approx(0.5)
    assert ema_beta(64, 64, 10, 0.05) < 1e-6  # the first step all but copies G
    assert ema_beta(64, 64, 10, None) == beta  # no ramp-up: the full half-life at once
    assert ema_beta(128, 10**9, 10, 0.05) == pytest.approx(beta**2)  # per image, not per step


def tiny_generator() -> DCGANGenerator:
    torch.manual_seed(0)
    return DCGANGenerator(latent_dim=8, channels=1, image_size=16, base_width=4)


def test_standing_stats_are_the_mean_batch_statistics_of_the_copy() -> None:
    g = tiny_generator()
    original = {k: v.clone() for k, v in g.state_dict().items()}
    standing = standing_stats(g, latent_dim=8, num_classes=0, batches=3, batch_size=32, seed=5)
    assert all(torch.equal(v, g.state_dict()[k]) for k, v in original.items())  # G untouched
    assert not standing.training
    bn = standing.net[1]
    assert bn.momentum == g.net[1].momentum  # restored after the cumulative pass
    # the first BatchNorm sees the first transposed conv's output on the same noise
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        h = [g.net[0](torch.randn(32, 8, generator=gen).view(32, 8, 1, 1)) for _ in range(3)]
    means = torch.stack([x.mean((0, 2, 3)) for x in h]).mean(0)
    variances = torch.stack([x.var((0, 2, 3), unbiased=True) for x in h]).mean(0)
    torch.testing.assert_close(bn.running_mean, means)
    torch.testing.assert_close(bn.running_var, variances)
    again = standing_stats(g, latent_dim=8, num_classes=0, batches=3, batch_size=32, seed=5)
    assert torch.equal(again.net[1].running_var, bn.running_var)  # same seed, same copy


def dcgan_module(**kwargs) -> GANModule:
    return GANModule(tiny_generator(), nn.Flatten(), NonSaturatingLoss(), adam(), adam(), **kwargs)


def test_sampler_is_the_average_with_standing_stats_recomputed_after_each_update() -> None:
    module = dcgan_module(ema_kimg=1)
    module.g_ema.update_parameters(module.generator)
    first = module.sampler
    assert first is module.sampler  # cached while the average does not change
    assert first is not module.g_ema.module
    assert "_standing" not in dict(module.named_children())
    assert not any(k.startswith("_standing") for k in module.state_dict())
    expected = standing_stats(module.g_ema.module, 8, 0)
    assert torch.equal(first.net[1].running_mean, expected.net[1].running_mean)
    with torch.no_grad():
        module.generator.net[0].weight.mul_(2)
    module.g_ema.update_parameters(module.generator)
    assert module.sampler is not first  # new weights, new statistics
    raw = dcgan_module(ema_kimg=1, ema_standing_stats=False)
    assert raw.sampler is raw.g_ema.module  # the averaged statistics, as before


def test_a_fixed_decay_replaces_the_ramped_half_life() -> None:
    module = dcgan_module(ema_kimg=10, ema_decay=0.9)
    assert module.ema_kimg is None and module.ema_decay == 0.9


def w1(samples: torch.Tensor, mean: float, std: float) -> float:
    """1-D Wasserstein distance of samples to N(mean, std), by quantiles."""
    n = len(samples)
    q = torch.distributions.Normal(mean, std).icdf((torch.arange(n) + 0.5) / n)
    return (samples.flatten().sort().values - q).abs().mean().item()


def test_a_short_run_with_the_ramped_ema_is_not_worse_than_without() -> None:
    """300 steps on N(3, 0.5): the ramped average samples at least as well as the generator it
    averages, while a fixed 0.999 decay, dominated by its first weights, stays far off."""

    def module(**ema) -> GANModule:
        torch.manual_seed(0)
        g, d = VectorGenerator(latent_dim=4, dim=1, hidden=(32, 32)), VectorDiscriminator(dim=1)
        return GANModule(g, d, NonSaturatingLoss(), adam(2e-3), adam(2e-3), **ema)

    ramped, fixed = module(ema_kimg=10), module(ema_decay=0.999)
    for m in (ramped, fixed):  # 300 steps of 128 images: 38,400 images, half-life 1,920
        fit(m, PointData(3.0, 0.5), max_steps=600)
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(4000, 4, generator=gen)
    with torch.no_grad():
        plain = w1(ramped.generator.eval()(z), 3.0, 0.5)
        averaged = w1(ramped.sampler(z), 3.0, 0.5)
        stale = w1(fixed.sampler(z), 3.0, 0.5)
    assert plain < 0.3, f"the generator itself did not learn N(3, 0.5): W1 {plain:.3f}"
    assert averaged <= plain * 1.1 + 0.01, (averaged, plain)
    assert stale > 3 * averaged, (stale, averaged)


def test_resuming_with_the_ema_switched_on_names_the_setting(tmp_path) -> None:
    """A checkpoint made without the EMA (before it was a default) is refused in one line that
    names model.ema_kimg, the override that resumes it."""
    common = [*TINY_DCGAN, *QUIET_RUN, "logger=csv"]
    out = tmp_path / "run"
    train(compose_config([*common, "max_g_steps=2", "model.ema_kimg=null"], out))
    last = out / "checkpoints" / "last.ckpt"
    with pytest.raises(GanforgeError, match=r"model\.ema_kimg: None -> 10"):
        train(compose_config([*common, "max_g_steps=3", f"ckpt_path={last}"], out))
    train(
        compose_config([*common, "max_g_steps=3", "model.ema_kimg=null", f"ckpt_path={last}"], out)
    )
    assert torch.load(last, weights_only=False)["global_step"] == 6
