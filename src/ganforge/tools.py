"""The jobs behind ``src/sample.py``, ``src/export.py`` and ``src/report.py``: read the config,
call the library functions, say where the files went."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from ganforge.checkpoint import load_module
from ganforge.dashboard import log_interpolation
from ganforge.errors import GanforgeError
from ganforge.export import check_exports, export_generator
from ganforge.report import build_report
from ganforge.sampling import (
    Labels,
    interpolate,
    interpolation_frames,
    sample_images,
    save_gif,
    save_grid,
    save_individual,
)

log = logging.getLogger(__name__)

MODES = ("grid", "interpolate")


def _required(cfg: DictConfig, key: str, example: str) -> str:
    value = cfg.get(key)
    if not value:
        raise GanforgeError(f"{key} is required, e.g. {example}")
    return str(value)


def _device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def _labels(cfg: DictConfig) -> Labels:
    labels = cfg.get("labels")
    return OmegaConf.to_container(labels) if OmegaConf.is_list(labels) else labels


def sample(cfg: DictConfig) -> Path:
    """Write a sample grid (``mode=grid``) or an interpolation grid and GIF
    (``mode=interpolate``) from a checkpoint; return the grid's path."""
    ckpt = _required(cfg, "ckpt_path", "ckpt_path=outputs/train/runs/<time>/checkpoints/last.ckpt")
    if cfg.mode not in MODES:
        raise GanforgeError(f"mode={cfg.mode} is not one of {list(MODES)}")
    module, run_cfg = load_module(ckpt, map_location=_device(cfg.device))
    out = Path(cfg.output_dir)
    truncation = cfg.get("truncation")
    if cfg.mode == "interpolate":
        spec = cfg.interpolation
        paths = interpolate(module, spec.paths, spec.steps, cfg.seed, _labels(cfg), truncation)
        grid = save_grid(paths.flatten(0, 1), spec.steps, out / "interpolation.png")
        log.info("interpolation grid (one path per row): %s", grid)
        if spec.gif:
            gif = save_gif(interpolation_frames(paths), out / "interpolation.gif", spec.frame_ms)
            log.info("interpolation animation: %s", gif)
            if cfg.get("wandb", True):
                log_interpolation(ckpt, run_cfg, gif, module.loss.n_critic)
        return grid
    images, labels, nrow = sample_images(
        module, cfg.n, cfg.get("nrow"), cfg.seed, _labels(cfg), truncation
    )
    grid = save_grid(images, nrow, out / "samples.png")
    log.info("%d samples (%d per row): %s", len(images), nrow, grid)
    if cfg.save_individual:
        files = save_individual(images, labels, out / "images")
        log.info("%d single images in %s", len(files), files[0].parent)
    return grid


def export(cfg: DictConfig) -> dict[str, Path]:
    """Export a checkpoint's sampling generator and check the files reproduce its images."""
    ckpt = _required(cfg, "ckpt_path", "ckpt_path=outputs/train/runs/<time>/checkpoints/last.ckpt")
    module, _ = load_module(ckpt, map_location="cpu")
    files = export_generator(module, cfg.output_dir, list(cfg.formats))
    for fmt, path in files.items():
        log.info("%s: %s", fmt, path)
    if cfg.check:
        for fmt, diff in check_exports(module, files).items():
            if diff > cfg.tolerance:
                raise GanforgeError(
                    f"the {fmt} export differs from the checkpoint by up to {diff:.3g} "
                    f"(tolerance={cfg.tolerance}); do not use {files[fmt]}"
                )
            log.info("%s reproduces the checkpoint's images (max abs difference %.2g)", fmt, diff)
    return files


def report(cfg: DictConfig) -> Path:
    """Write ``report.html`` and ``report.png`` for an existing run folder."""
    run_dir = _required(cfg, "run_dir", "run_dir=outputs/train/runs/<time>")
    files = build_report(run_dir, out_dir=cfg.get("output_dir"), max_grids=cfg.max_grids)
    log.info("run report: %s (overview: %s)", files.html, files.png)
    return files.html
