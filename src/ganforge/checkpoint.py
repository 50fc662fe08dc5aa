"""Reading and checking ganforge checkpoint files, with clear errors for bad ones (building a
module from one is :func:`ganforge.build.load_module`)."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from ganforge.errors import GanforgeError


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint file onto the CPU; a missing, truncated or foreign file is a
    :class:`GanforgeError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise GanforgeError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile) as err:
        raise GanforgeError(
            f"checkpoint {path} cannot be read (truncated or not a PyTorch file): {err}"
        ) from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise GanforgeError(f"{path} is not a Lightning checkpoint (no state_dict)")
    return ckpt


def resume_path(ckpt_path: str | None, checkpoint_dir: str | Path | None) -> str | None:
    """The checkpoint a run resumes from: ``ckpt_path`` as given, except that ``last`` means the
    run folder's ``last.ckpt`` if it exists and a fresh start otherwise (so a job requeued into
    its folder, e.g. by SLURM, continues where it stopped)."""
    if ckpt_path != "last":
        return ckpt_path
    last = Path(checkpoint_dir or ".") / "last.ckpt"
    return str(last) if last.is_file() else None


#: class paths renamed since checkpoints were first written, old -> new (checkpoints store the
#: config's ``_target_`` strings, not pickled classes, so this is all a rename needs)
RENAMED_TARGETS = {"ganforge.accel.FastPath": "ganforge.fast_path.FastPath"}
#: config keys added since checkpoints were first written: (node, key, the value every checkpoint
#: written before it was trained with, the class name the node must build, or None for any)
ADDED_KEYS: tuple[tuple[str, str, Any, str | None], ...] = (
    ("loss", "n_gen", 1, None),
    ("model", "latent_prior", "normal", "GANModule"),
    *(
        (f"model.{net}", key, 4, f"DCGAN{net.title()}")
        for net in ("generator", "discriminator")
        for key in ("kernel_size", "bottom_size")
    ),
    *(
        ("model.generator", "output_range", [-1, 1], cls)
        for cls in ("DCGANGenerator", "MLPGenerator", "ResNetGenerator")
    ),
    *(
        ("model.discriminator", "input_range", [-1, 1], cls)
        for cls in ("DCGANDiscriminator", "MLPDiscriminator", "ResNetDiscriminator")
    ),
)


def _fill_added_keys(config: dict[str, Any]) -> None:
    for path, key, value, cls in ADDED_KEYS:
        node: Any = config
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            continue
        if cls is None or str(node.get("_target_", "")).rsplit(".", 1)[-1] == cls:
            node.setdefault(key, value)


def checkpoint_config(ckpt: dict[str, Any], path: str | Path = "checkpoint") -> DictConfig:
    """The run config stored in a ganforge checkpoint, with renamed class paths updated and
    keys added since it was written filled in."""
    if "ganforge_config" not in ckpt:
        raise GanforgeError(f"{path} was not written by ganforge (no ganforge_config inside)")
    config = _renamed(ckpt["ganforge_config"])
    _fill_added_keys(config)
    return OmegaConf.create(config)


def _renamed(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: _renamed(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_renamed(value) for value in node]
    return RENAMED_TARGETS.get(node, node) if isinstance(node, str) else node


def state_dict_mismatch(saved: dict[str, Tensor], current: dict[str, Tensor]) -> str | None:
    """What differs between a checkpoint's weights and a module's (missing and unexpected
    names, other shapes; a few of each), or None when they fit."""
    missing = [k for k in current if k not in saved]
    unexpected = [k for k in saved if k not in current]
    reshaped = [
        f"{k} {tuple(saved[k].shape)} vs {tuple(v.shape)}"
        for k, v in current.items()
        if k in saved and saved[k].shape != v.shape
    ]
    found = (
        ("missing", missing),
        ("unexpected", unexpected),
        ("other shapes (checkpoint vs now)", reshaped),
    )
    return "; ".join(f"{label}: {items[:3]}" for label, items in found if items) or None
