"""The command-line jobs behind ``src/sample.py``, ``src/export.py``, ``src/report.py`` and
``src/eval.py``: read the config, call the library functions, say where the results went.
(``src/train.py`` runs :func:`ganforge.run.train`.)"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from ganforge.build import load_module
from ganforge.dashboard import log_eval, log_interpolation
from ganforge.errors import GanforgeError
from ganforge.export import check_exports, export_generator
from ganforge.metrics.evaluate import METRIC_NAMES, make_evaluator, module_sampler
from ganforge.metrics.features import resolve_feature_space
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
CKPT_EXAMPLE = "ckpt_path=outputs/train/runs/<time>/checkpoints/last.ckpt"


def _required(cfg: DictConfig, key: str, example: str) -> str:
    value = cfg.get(key)
    if not value:
        raise GanforgeError(f"{key} is required, e.g. {example}")
    return str(value)


def resolve_device(name: str) -> str:
    """The device a job runs on: ``auto`` is CUDA when available, else the CPU."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def _labels(cfg: DictConfig) -> Labels:
    labels = cfg.get("labels")
    return OmegaConf.to_container(labels) if OmegaConf.is_list(labels) else labels


def sample(cfg: DictConfig) -> Path:
    """Write a sample grid (``mode=grid``) or an interpolation grid and GIF
    (``mode=interpolate``) from a checkpoint; return the grid's path."""
    ckpt = _required(cfg, "ckpt_path", CKPT_EXAMPLE)
    if cfg.mode not in MODES:
        raise GanforgeError(f"mode={cfg.mode} is not one of {list(MODES)}")
    module, run_cfg = load_module(ckpt, map_location=resolve_device(cfg.device))
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
                log_interpolation(ckpt, run_cfg, gif, module.loss.steps_per_iteration)
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
    ckpt = _required(cfg, "ckpt_path", CKPT_EXAMPLE)
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


def format_table(values: dict[str, float]) -> str:
    """A two-column text table of metric values, in :data:`METRIC_NAMES` order first."""
    names = [k for k in METRIC_NAMES if k in values] + [k for k in values if k not in METRIC_NAMES]
    width = max(len(n) for n in names)
    rows = [f"{'metric':<{width}}  value", f"{'-' * width}  {'-' * 12}"]
    rows += [f"{n:<{width}}  {values[n]:.6g}" for n in names]
    return "\n".join(rows)


def evaluate_checkpoint(cfg: DictConfig) -> dict[str, Any]:
    """Score ``cfg.ckpt_path`` on ``cfg.metrics.num_samples`` samples against the real data of
    its own run config (or ``cfg.data`` when given); return what is written to
    ``cfg.output_file``."""
    ckpt = _required(cfg, "ckpt_path", CKPT_EXAMPLE)
    device = resolve_device(cfg.device)
    module, run_cfg = load_module(ckpt, map_location=device)
    datamodule = hydra.utils.instantiate(cfg.get("data") or run_cfg.data)
    options = OmegaConf.to_container(cfg.metrics, resolve=True)
    evaluator = make_evaluator(datamodule, device=device, **options)
    truncation = cfg.get("truncation")
    values = evaluator.evaluate(module_sampler(module, truncation), device=device)
    result = {
        "ckpt_path": str(cfg.ckpt_path),
        "dataset": datamodule.name,
        "feature_space": resolve_feature_space(options["feature_space"], datamodule.name),
        "num_samples": options["num_samples"],
        "num_real": len(evaluator.real_features),
        "real_split": options["real_split"],
        "truncation": truncation,
        "metrics": values,
    }
    if truncation is not None:
        print(f"samples drawn with truncation={truncation}")
    print(format_table(values))
    if truncation is not None:
        # eval/* is the checkpoint's score on its own prior; a truncated one would replace it
        log.info("truncation=%s: scores are not logged to W&B (see metrics.json)", truncation)
    elif cfg.get("wandb", True):
        result["wandb_run_id"] = log_eval(
            ckpt, run_cfg, values, options["num_samples"], module.loss.steps_per_iteration
        )
    out = Path(cfg.output_file)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    log.info("metrics written to %s", out)
    return result
