"""Data configs drive the model configs: shapes and class counts flow by interpolation."""

from __future__ import annotations

import hydra
import pytest
import torch

from ganforge.build import build_module

SMALL_DCGAN = ["model.generator.base_width=8", "model.discriminator.base_width=8"]


@pytest.mark.parametrize(
    "overrides",
    [
        ["data=mnist5k", "data.image_size=64", *SMALL_DCGAN],
        [
            "data=stacked_mnist",
            "data.num_samples=256",
            "data.num_val=0",
            "model.conditioning=projection",
        ],
        ["data=grid25", "model=toy_mlp", "model.conditioning=concat"],
    ],
)
def test_a_data_batch_fits_the_model_built_from_the_same_config(make_cfg, overrides):
    cfg = make_cfg(*overrides)
    data = hydra.utils.instantiate(cfg.data)
    data.setup()
    x, y = next(iter(data.train_dataloader()))
    module = build_module(cfg)
    assert module.num_classes == (data.num_classes if cfg.model.conditioning != "none" else 0)
    with torch.no_grad():
        fake = module.generator(
            torch.randn(4, module.latent_dim), y[:4] if module.num_classes else None
        )
        assert fake.shape[1:] == x.shape[1:]
        out = module.discriminator(x[:4], y[:4] if module.num_classes else None)
    assert out.shape == (4,)
