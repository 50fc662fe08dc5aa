"""Building a module from a config or a checkpoint: checkpoints written before a class was
renamed still load, and a mismatched checkpoint is one clear report."""

from __future__ import annotations

import pytest
import torch

from ganforge.build import build_module, load_module
from ganforge.checkpoint import checkpoint_config
from ganforge.errors import GanforgeError

TINY = [
    "model.generator.base_width=8",
    "model.discriminator.base_width=8",
    "model.generator.latent_dim=16",
    "model.num_fixed_samples=10",
]


def test_checkpoints_naming_the_old_fast_path_module_still_load(make_cfg, tmp_path) -> None:
    module = build_module(make_cfg(*TINY))
    config = module.run_config
    assert config["model"]["fast_path"]["_target_"] == "ganforge.fast_path.FastPath"
    config["model"]["fast_path"]["_target_"] = "ganforge.accel.FastPath"  # before the rename
    path = tmp_path / "old.ckpt"
    torch.save({"state_dict": module.state_dict(), "ganforge_config": config}, path)

    ckpt = torch.load(path, weights_only=False)
    assert checkpoint_config(ckpt).model.fast_path._target_ == "ganforge.fast_path.FastPath"
    loaded, _ = load_module(path)
    for key, value in module.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_a_checkpoint_of_another_architecture_is_named_with_what_differs(
    make_cfg, tmp_path
) -> None:
    module = build_module(make_cfg(*TINY))
    other = build_module(make_cfg(*TINY[1:], "model.generator.base_width=16"))
    path = tmp_path / "edited.ckpt"
    torch.save({"state_dict": other.state_dict(), "ganforge_config": module.run_config}, path)
    with pytest.raises(GanforgeError, match=r"does not match the architecture.*other shapes"):
        load_module(path)


@pytest.mark.parametrize("n_gen", [1, 2])
def test_a_loaded_module_knows_the_checkpoints_iteration(make_cfg, tmp_path, n_gen) -> None:
    """Scripts scoring checkpoints read ``g_step`` off the loaded module, with no trainer."""
    module = build_module(make_cfg(*TINY, f"loss.n_gen={n_gen}"))
    assert module.g_step == 0
    path = tmp_path / "run.ckpt"
    ckpt = {"state_dict": module.state_dict(), "ganforge_config": module.run_config}
    torch.save({**ckpt, "global_step": 7 * (1 + n_gen)}, path)  # 7 iterations, 1 D step each
    loaded, _ = load_module(path)
    assert (loaded.g_step, loaded.d_step) == (7, 7)
