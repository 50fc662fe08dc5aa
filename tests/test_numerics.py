"""The run's float settings (``ganforge.numerics``): set by ``train`` from the config, and
flushing denormals really flushes them. The 2-process check (spawned ranks get the parent's
settings) is in tests/test_ddp.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ganforge import numerics
from ganforge.numerics import Numerics
from ganforge.run import train
from tests.conftest import QUIET_RUN, TINY_DCGAN, compose_config

TINY = ["logger=csv", "callbacks.progress=null", "callbacks.model_summary=null"]
TINY += [*TINY_DCGAN, *QUIET_RUN, "max_g_steps=1"]


def flushed() -> bool:
    """Whether this thread flushes denormal results: 1e-30 * 1e-9 is below float32's normal
    range (1.2e-38), so it is either a denormal number or zero."""
    return float(torch.tensor(1e-30) * torch.tensor(1e-9)) == 0.0


@pytest.fixture(autouse=True)
def restore_numerics():
    """Leave the process's settings as the test found them."""
    before = numerics.current()
    yield
    before.apply()


@pytest.mark.parametrize("flush", [True, False])
def test_apply_sets_both_settings_and_remembers_them(flush: bool) -> None:
    settings = Numerics("medium", flush_denormal=flush)
    settings.apply()
    assert torch.get_float32_matmul_precision() == "medium"
    assert flushed() is flush
    assert numerics.current() == settings


def test_a_null_precision_keeps_torchs_setting() -> None:
    torch.set_float32_matmul_precision("high")
    assert Numerics.from_config({"float32_matmul_precision": None}) == Numerics("high", False)
    cfg = {"float32_matmul_precision": "medium", "flush_denormal": True}
    assert Numerics.from_config(cfg) == Numerics("medium", True)


@pytest.mark.parametrize("flush", [True, False])
def test_train_applies_the_configs_settings(tmp_path: Path, flush: bool) -> None:
    """The default config flushes denormals; ``flush_denormal=false`` keeps them."""
    Numerics("highest", flush_denormal=not flush).apply()
    overrides = [*TINY, "float32_matmul_precision=high"]
    if not flush:
        overrides.append("flush_denormal=false")
    train(compose_config(overrides, tmp_path / "run"))
    assert flushed() is flush
    assert torch.get_float32_matmul_precision() == "high"
