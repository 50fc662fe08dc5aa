"""The job behind ``src/eval.py``: score a checkpoint's generator, print a table, write JSON."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from ganforge.checkpoint import load_module
from ganforge.dashboard import log_eval
from ganforge.errors import GanforgeError
from ganforge.metrics.evaluate import METRIC_NAMES, make_evaluator, module_sampler
from ganforge.metrics.features import resolve_feature_space

log = logging.getLogger(__name__)


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
    if not cfg.get("ckpt_path"):
        raise GanforgeError(
            "ckpt_path is required, e.g. ckpt_path=outputs/train/runs/<time>/checkpoints/last.ckpt"
        )
    device = cfg.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    module, run_cfg = load_module(cfg.ckpt_path, map_location=device)
    datamodule = hydra.utils.instantiate(cfg.get("data") or run_cfg.data)
    options = OmegaConf.to_container(cfg.metrics, resolve=True)
    evaluator = make_evaluator(datamodule, device=device, **options)
    values = evaluator.evaluate(module_sampler(module), device=device)
    result = {
        "ckpt_path": str(cfg.ckpt_path),
        "dataset": datamodule.name,
        "feature_space": resolve_feature_space(options["feature_space"], datamodule.name),
        "num_samples": options["num_samples"],
        "num_real": len(evaluator.real_features),
        "real_split": options["real_split"],
        "metrics": values,
    }
    print(format_table(values))
    if cfg.get("wandb", True):
        result["wandb_run_id"] = log_eval(
            cfg.ckpt_path, run_cfg, values, options["num_samples"], module.loss.n_critic
        )
    out = Path(cfg.output_file)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    log.info("metrics written to %s", out)
    return result
