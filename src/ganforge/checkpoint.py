"""Rebuild a trained GAN module from a ganforge checkpoint, with clear errors for bad files."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

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


def checkpoint_config(ckpt: dict[str, Any], path: str | Path = "checkpoint") -> DictConfig:
    """The run config stored in a ganforge checkpoint."""
    if "ganforge_config" not in ckpt:
        raise GanforgeError(f"{path} was not written by ganforge (no ganforge_config inside)")
    return OmegaConf.create(ckpt["ganforge_config"])


def load_module(path: str | Path, map_location: str | torch.device = "cpu"):
    """The :class:`~ganforge.module.GANModule` saved in ``path``, in eval mode, with its config.

    Architecture mismatches (a checkpoint edited or from another model) are reported with the
    offending parameter names.
    """
    from ganforge.run import build_module

    ckpt = read_checkpoint(path)
    cfg = checkpoint_config(ckpt, path)
    if cfg.model.get("fast_path"):  # tools run a few batches: compiling them would not pay off
        cfg.model.fast_path.compile = False
    module = build_module(cfg)
    missing, unexpected = module.load_state_dict(ckpt["state_dict"], strict=False)
    if missing or unexpected:
        raise GanforgeError(
            f"checkpoint {path} does not match the architecture in its config "
            f"(missing: {missing[:5]}, unexpected: {unexpected[:5]})"
        )
    return module.to(map_location).eval(), cfg
