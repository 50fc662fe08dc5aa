"""``model.latent_prior``: the uniform prior of Radford et al. and the DCGAN-TensorFlow code reaches
every place that draws z (training, the fixed noise, sampling, interpolation, EMA statistics,
export), and the normal prior draws exactly the numbers it drew before the option existed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from ganforge.errors import GanforgeError
from ganforge.export import example_inputs, write_signature
from ganforge.losses import NonSaturatingLoss
from ganforge.module import GANModule
from ganforge.nets import DCGANGenerator
from ganforge.noise import latent_noise
from ganforge.sampling import interpolate, sample_images
from ganforge.validate import validate_train
from tests.conftest import TINY_DCGAN, compose_config
from tests.test_module import PointData, adam, fit


def is_uniform(z: Tensor) -> bool:
    """Inside [-1, 1] with the uniform's variance 1/3 (a normal has 1 and leaves the cube)."""
    return bool(z.abs().max() <= 1) and abs(float(z.var()) - 1 / 3) < 0.05


def test_uniform_prior_fills_the_cube_and_truncation_narrows_it() -> None:
    z = latent_noise(4000, 16, torch.Generator().manual_seed(0), prior="uniform")
    assert is_uniform(z) and float(z.min()) < -0.99 and float(z.max()) > 0.99
    assert abs(float(z.mean())) < 0.01
    half = latent_noise(4000, 16, torch.Generator().manual_seed(0), 0.5, "uniform")
    assert float(half.abs().max()) <= 0.5 and float(half.abs().max()) > 0.49
    wide = latent_noise(4000, 16, torch.Generator().manual_seed(0), 3.0, "uniform")
    torch.testing.assert_close(wide, z, rtol=0, atol=0)  # the cube already lies inside [-3, 3]


def test_normal_prior_draws_what_torch_randn_draws() -> None:
    """Checkpoints' fixed noise and seeded samples from before the option stay the same."""
    z = latent_noise(8, 5, torch.Generator().manual_seed(3))
    assert torch.equal(z, torch.randn(8, 5, generator=torch.Generator().manual_seed(3)))
    torch.manual_seed(7)
    a = latent_noise(8, 5, None, device="cpu")
    torch.manual_seed(7)
    assert torch.equal(a, torch.randn(8, 5))


def test_an_unknown_prior_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(GanforgeError, match="latent_prior='cauchy'"):
        latent_noise(2, 4, None, prior="cauchy")
    cfg = compose_config([*TINY_DCGAN, "model.latent_prior=cauchy"], tmp_path)
    with pytest.raises(GanforgeError, match=r"model.latent_prior.*normal or uniform"):
        validate_train(cfg)


def tiny_module(prior: str, **kwargs) -> GANModule:
    torch.manual_seed(0)
    g = DCGANGenerator(latent_dim=8, channels=1, image_size=16, base_width=4)
    return GANModule(
        g, nn.Flatten(), NonSaturatingLoss(), adam(), adam(), latent_prior=prior, **kwargs
    )


class RecordInputs:
    """Every ``z`` a network's forward receives (a pre-hook; copies of the net keep it)."""

    def __init__(self, net: nn.Module) -> None:
        self.z: list[Tensor] = []
        net.register_forward_pre_hook(lambda _m, args: self.z.append(args[0].detach().clone()))

    def all(self) -> Tensor:
        return torch.cat(self.z)


def test_training_draws_every_z_from_the_uniform_prior() -> None:
    module = GANModule(
        *_point_nets(),
        NonSaturatingLoss(n_gen=2),
        adam(),
        adam(),
        latent_prior="uniform",
        num_fixed_samples=512,
    )
    seen = RecordInputs(module.generator)
    fit(module, PointData(0.0, 1.0, n=512, batch_size=128), max_steps=3 * 3)
    assert len(seen.z) == 3 * 2  # one fake batch per iteration, and one for the second G update
    assert is_uniform(seen.all())
    assert is_uniform(module.fixed_noise)
    normal = _point_module("normal")
    seen = RecordInputs(normal.generator)
    fit(normal, PointData(0.0, 1.0, n=512, batch_size=128), max_steps=2 * 2)
    assert float(seen.all().abs().max()) > 2


def _point_nets() -> tuple[nn.Module, nn.Module]:
    from ganforge.nets import VectorDiscriminator, VectorGenerator

    torch.manual_seed(0)
    return VectorGenerator(latent_dim=64, dim=1, hidden=(8,)), VectorDiscriminator(1, (8,))


def _point_module(prior: str) -> GANModule:
    return GANModule(*_point_nets(), NonSaturatingLoss(), adam(), adam(), latent_prior=prior)


def test_sampling_grids_and_ema_statistics_use_the_uniform_prior() -> None:
    module = tiny_module("uniform", ema_kimg=1)
    module.g_ema.update_parameters(module.generator)
    seen = RecordInputs(module.g_ema.module)
    module.sampler  # noqa: B018 - computes the standing BatchNorm statistics on fresh noise
    assert len(seen.z) == 8 and is_uniform(seen.all())  # standing_stats' 8 batches
    seen.z.clear()
    module.sample(500, generator=torch.Generator().manual_seed(0))
    sample_images(module, n=500, seed=1)
    assert len(seen.z) >= 2 and all(is_uniform(z) for z in seen.z)


def test_uniform_interpolation_runs_on_straight_lines_inside_the_cube() -> None:
    module = tiny_module("uniform")
    seen = RecordInputs(module.generator)
    interpolate(module, paths=3, steps=5, seed=0)
    z = seen.all().view(3, 5, 8)
    torch.testing.assert_close(z[:, 2], (z[:, 0] + z[:, 4]) / 2)  # the midpoint of a line
    assert float(z.abs().max()) <= 1
    normal = tiny_module("normal")
    seen = RecordInputs(normal.generator)
    interpolate(normal, paths=3, steps=5, seed=0)
    z = seen.all().view(3, 5, 8)
    assert (z[:, 2] - (z[:, 0] + z[:, 4]) / 2).abs().max() > 0.1  # an arc, not a line


def test_export_traces_with_and_records_the_prior(tmp_path: Path) -> None:
    module = tiny_module("uniform")
    (z,) = example_inputs(module, n=256)
    assert is_uniform(z)
    path = write_signature(module, torch.zeros(1, 1, 16, 16), tmp_path / "generator.json")
    assert json.loads(path.read_text())["inputs"]["z"]["prior"] == "uniform"
