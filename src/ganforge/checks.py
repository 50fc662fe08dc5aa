"""Preflight checks run before ``trainer.fit``: bad input fails in seconds, with a message that
names the offending value and what is allowed, instead of minutes later deep in a stack trace."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from ganforge.checkpoint import checkpoint_config, read_checkpoint, state_dict_mismatch
from ganforge.errors import GanforgeError

#: model network keys that must agree with the data config of the same name
SHAPE_KEYS = ("channels", "image_size")


def check_data_path(data_cfg: DictConfig) -> None:
    """A configured ``data.path`` must exist and hold at least one file."""
    path = data_cfg.get("path")
    if path is None or "://" in str(path):  # object-store URIs (streaming shards) are remote
        return
    path = Path(str(path)).expanduser()
    if not path.exists():
        raise GanforgeError(
            f"data.path={path} does not exist. Point data.path at your dataset folder "
            "(absolute, or relative to the directory you run from)."
        )
    if path.is_dir() and not any(p.is_file() for p in path.rglob("*")):
        raise GanforgeError(f"data.path={path} is an empty folder; it must contain the images.")


def check_data_fits_model(datamodule: Any, cfg: DictConfig) -> None:
    """Channels, image size and class count of the networks must match the data's."""
    name = getattr(datamodule, "name", type(datamodule).__name__)
    conditioning = cfg.model.get("conditioning", "none")
    data_classes = getattr(datamodule, "num_classes", None)
    if conditioning != "none" and not data_classes:
        raise GanforgeError(
            f"model.conditioning={conditioning} needs labelled data, but data {name!r} has no "
            "labels (num_classes is null). Use a labelled dataset or model.conditioning=none."
        )
    for net in ("generator", "discriminator"):
        net_cfg = cfg.model.get(net) or {}
        for key in SHAPE_KEYS:
            want, got = getattr(datamodule, key, None), net_cfg.get(key)
            if want is not None and got is not None and got != want:
                raise GanforgeError(
                    f"model.{net}.{key}={got} does not match the data ({name!r} has "
                    f"{key}={want}). Remove the override so it follows data.{key}, or set both."
                )
        got = net_cfg.get("num_classes")
        if conditioning != "none" and got is not None and got != data_classes:
            raise GanforgeError(
                f"model.{net}.num_classes={got} does not match the data ({name!r} has "
                f"num_classes={data_classes}); a conditional model needs one class per label."
            )


@torch.no_grad()
def check_networks_fit_data(module: nn.Module, datamodule: Any) -> None:
    """Run G and D once on a batch of two (eval mode, no RNG drawn, no state changed) and
    check that G's images have the data's shape and D accepts them."""
    channels, size = getattr(datamodule, "channels", None), getattr(datamodule, "image_size", None)
    if channels is None or size is None:
        return
    z = torch.zeros(2, module.latent_dim)
    y = torch.zeros(2, dtype=torch.long) if module.num_classes else None
    was_training = module.training
    module.eval()
    try:
        try:
            images = module.generator(z, y)
        except RuntimeError as err:
            raise GanforgeError(
                f"the generator cannot run with these settings ({str(err).splitlines()[0]}); "
                f"check model.generator (latent_dim={module.latent_dim}) against data.channels="
                f"{channels}, data.image_size={size}"
            ) from None
        want = (2, channels, size, size)
        if tuple(images.shape) != want:
            raise GanforgeError(
                f"the generator makes images of shape {tuple(images.shape[1:])}, but the data "
                f"has channels={channels}, image_size={size}; the model config does not fit "
                "data.channels / data.image_size."
            )
        try:
            module.discriminator(images, y)
        except RuntimeError as err:
            raise GanforgeError(
                f"the discriminator cannot read {channels}x{size}x{size} images ({err}); check "
                "model.discriminator against data.channels / data.image_size."
            ) from None
    finally:
        module.train(was_training)


def _config_diff(old: DictConfig, new: DictConfig, prefix: str, limit: int = 5) -> list[str]:
    """``key: old -> new`` for leaves that differ between two config nodes."""
    flat_old = _flatten(OmegaConf.to_container(old, resolve=True), prefix)
    flat_new = _flatten(OmegaConf.to_container(new, resolve=True), prefix)
    keys = sorted(set(flat_old) | set(flat_new))
    changed = [k for k in keys if flat_old.get(k) != flat_new.get(k)]
    return [f"{k}: {flat_old.get(k)} -> {flat_new.get(k)}" for k in changed[:limit]]


def _flatten(node: Any, prefix: str) -> dict[str, Any]:
    if not isinstance(node, dict):
        return {prefix: node}
    out: dict[str, Any] = {}
    for key, value in node.items():
        out.update(_flatten(value, f"{prefix}.{key}"))
    return out


def check_resume_checkpoint(path: str | Path, module: nn.Module, cfg: DictConfig) -> dict[str, Any]:
    """Read the checkpoint to resume from and check it was written for this architecture:
    a missing, truncated, foreign or mismatched file is a :class:`GanforgeError` naming it.
    Returns the checkpoint (for the W&B run id it carries)."""
    ckpt = read_checkpoint(path)
    if details := state_dict_mismatch(ckpt["state_dict"], module.state_dict()):
        changed = _config_diff(checkpoint_config(ckpt, path).model, cfg.model, "model")
        hint = f" Config changes since it was written: {changed}." if changed else ""
        raise GanforgeError(
            f"ckpt_path={path} was written for another architecture ({details}).{hint} Resume "
            "with the model and data settings the checkpoint was trained with."
        )
    return ckpt


def run_preflights(objects: Iterable[Any]) -> None:
    """Call ``preflight()`` on every object that defines it (datamodules and callbacks that need
    files before training, e.g. metric feature-extractor weights when offline)."""
    for obj in objects:
        check = getattr(obj, "preflight", None)
        if callable(check):
            check()
