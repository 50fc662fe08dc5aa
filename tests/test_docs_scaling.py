"""Every ``src/train.py`` command of docs/scaling.md composes; the first is the headline command.

The commands are read from the page's code blocks (``python src/train.py ...`` and
``torchrun ... src/train.py ...``), so an example that stops composing fails here. The
headline command itself is run on 2 and 4 CPU processes in ``tests/test_ddp.py``.
"""

from __future__ import annotations

import re
import shlex

import pytest
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from tests.conftest import ROOT, compose_config

PAGE = ROOT / "docs" / "scaling.md"
HEADLINE = "python src/train.py model=dcgan data=celeba trainer.devices=4"


def commands() -> list[str]:
    """The ``src/train.py`` command lines of the page's bash blocks, comments removed."""
    blocks = re.findall(r"```bash\n(.*?)```", PAGE.read_text(), flags=re.S)
    found = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if "src/train.py" in line and not line.startswith("#"):
                found.append(" ".join(line.split()))
    return found


def overrides(command: str) -> list[str]:
    """Hydra overrides of ``command`` with each sweep reduced to its first value."""
    args = shlex.split(command)
    args = args[args.index("src/train.py") + 1 :]
    out = []
    for arg in args:
        if arg == "-m":
            continue
        key, _, value = arg.partition("=")
        if "," in value and not value.startswith(("[", "{")):
            value = value.split(",")[0]
        out.append(f"{key}={value}")
    return out


def test_first_example_is_the_headline_command() -> None:
    assert commands()[0] == HEADLINE
    assert len(commands()) >= 10


@pytest.mark.parametrize("command", commands())
def test_example_composes(command: str, tmp_path) -> None:
    try:
        cfg = compose_config(overrides(command), tmp_path)
    finally:
        GlobalHydra.instance().clear()
    assert cfg.trainer._target_ == "lightning.pytorch.Trainer"
    for arg in overrides(command):  # every value override took effect
        key, _, value = arg.partition("=")
        if "." in key and "/" not in key:
            assert str(OmegaConf.select(cfg, key)) == value, arg
