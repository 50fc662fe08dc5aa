"""The keys a run logs for its dashboard, and how W&B is told to plot and summarise them.

Axes. ``train/g_step`` counts generator iterations completed (Lightning's
``trainer/global_step`` counts every optimizer step, ``n_critic + n_gen`` per iteration, and the
value Lightning logs under that name is its batch counter, one behind). ``train/kimg`` counts
thousands of real images shown to the discriminator over all processes, StyleGAN's
convention: ``n_critic * batch_size * world_size / 1000`` per generator iteration. Every W&B
chart uses ``train/g_step`` as its x axis; ``train/kimg`` is there to pick per panel when
comparing runs with different batch sizes or ``n_critic``.

Summaries. A run's summary holds the best value of each quality metric (FID and KID lowest;
IS, precision and recall highest), not the last one, plus the best checkpoint's path and
generator iteration under ``best/``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import Logger, TensorBoardLogger, WandbLogger
from torch import Tensor

log = logging.getLogger(__name__)

#: the x axis of every chart: generator iterations completed
G_STEP = "train/g_step"
#: thousands of real images the discriminator has seen (all processes)
KIMG = "train/kimg"
#: learning rates of the two optimizers (first parameter group)
LR_KEYS = {"g": "lr/g", "d": "lr/d"}
#: metric name -> which value the run summary keeps
SUMMARIES = {
    "fid": "min",
    "kid": "min",
    "is": "max",
    "precision": "max",
    "recall": "max",
    "kl_uniform": "min",
    "modes": "max",
}
#: prefixes the quality metrics are logged under: during training and by src/eval.py
METRIC_PREFIXES = ("metrics", "eval")


def define_metrics(run: Any) -> None:
    """Declare the axes and summaries on a W&B run (``wandb.Run``); harmless to repeat."""
    run.define_metric(G_STEP)
    run.define_metric(KIMG, step_metric=G_STEP, step_sync=True)
    # step_sync fills in the latest g_step for rows logged without it (epoch-end metrics)
    run.define_metric("*", step_metric=G_STEP, step_sync=True)
    for prefix in METRIC_PREFIXES:
        for name, best in SUMMARIES.items():
            run.define_metric(
                f"{prefix}/{name}", step_metric=G_STEP, step_sync=True, summary=f"{best},last"
            )


def wandb_runs(loggers: Iterable[Logger]) -> list[Any]:
    """The W&B runs behind ``loggers`` (started if needed)."""
    return [lg.experiment for lg in loggers if isinstance(lg, WandbLogger)]


def set_summary(loggers: Iterable[Logger], values: Mapping[str, Any]) -> None:
    """Write ``values`` into the summary of every W&B run among ``loggers``."""
    for run in wandb_runs(loggers):
        run.summary.update(dict(values))


def attach_files(loggers: Iterable[Logger], run_dir: Path, step: int) -> list[Path]:
    """Log ``report.html`` and any interpolation GIF found in ``run_dir`` to the W&B runs
    (``report`` as HTML, ``interpolation`` as a video) and keep them as run files."""
    files = [p for p in (run_dir / "report.html", run_dir / "interpolation.gif") if p.is_file()]
    runs = wandb_runs(loggers)
    if not files or not runs:
        return []
    import wandb

    for run in runs:
        row: dict[str, Any] = {G_STEP: step}
        for path in files:
            if path.suffix == ".html":
                row["report"] = wandb.Html(path.read_text(encoding="utf-8"))
            else:
                row["interpolation"] = wandb.Video(str(path), format="gif")
            run.save(str(path), base_path=str(run_dir), policy="now")
        run.log(row)
    return files


def log_to_checkpoint_run(
    ckpt_path: str | Path,
    run_cfg: Any,
    row: Mapping[str, Any],
    steps_per_iteration: int = 2,
    what: str = "scores",
) -> str | None:
    """Log ``row`` into the W&B run that wrote ``ckpt_path``, at the checkpoint's generator
    iteration (``steps_per_iteration`` optimizer steps each); return the run's id, or None when the
    checkpoint has no run or W&B could not start (a warning: the caller's files are written
    either way).

    The run is resumed by id (``resume="allow"``): online it is updated in place; offline a new
    offline folder with the same id appears in the training run's ``wandb/`` folder and
    ``wandb sync`` merges it into the run.
    """
    import torch
    from omegaconf import OmegaConf

    from ganforge.loggers import is_service_failure, wandb_mode
    from ganforge.resume import WANDB_RUN_ID

    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False, mmap=True)
    run_id = ckpt.get(WANDB_RUN_ID)
    if not run_id:
        log.info("%s was written without a W&B run; %s are not logged to W&B", ckpt_path, what)
        return None
    wcfg = OmegaConf.select(run_cfg, "logger.wandb", default=None) or {}
    save_dir = Path(wcfg.get("save_dir") or Path(ckpt_path).resolve().parents[1])
    if not save_dir.is_dir():  # the run folder moved: keep the checkpoint's neighbourhood
        save_dir = Path(ckpt_path).resolve().parents[1]
    row = {**row, G_STEP: ckpt.get("global_step", 0) // steps_per_iteration}
    import wandb

    for mode in dict.fromkeys((wandb_mode(wcfg.get("mode", "auto")), "offline")):
        try:
            run = wandb.init(
                id=run_id,
                resume="allow",
                project=wcfg.get("project", "ganforge"),
                dir=str(save_dir),
                mode=mode,
            )
        except Exception as err:  # the caller's files are written whatever W&B does
            log.warning("W&B could not start in %s mode (%s)", mode, err)
            if not is_service_failure(err):
                return None
            continue
        define_metrics(run)
        run.log(row)
        run.finish()
        where = "" if mode != "offline" else f"; upload with: wandb sync {save_dir / 'wandb'}"
        log.info("%s logged to W&B run %s (%s)%s", what, run_id, mode, where)
        return run_id
    return None


def log_eval(
    ckpt_path: str | Path,
    run_cfg: Any,
    values: Mapping[str, float],
    num_samples: int,
    steps_per_iteration: int = 2,
) -> str | None:
    """Write ``values`` as ``eval/<name>`` (with ``eval/num_samples``) into the checkpoint's
    W&B run (:func:`log_to_checkpoint_run`); ``metrics.json`` holds them either way."""
    row: dict[str, Any] = {f"eval/{k}": v for k, v in values.items()}
    row["eval/num_samples"] = num_samples
    return log_to_checkpoint_run(ckpt_path, run_cfg, row, steps_per_iteration, "scores")


def log_interpolation(
    ckpt_path: str | Path, run_cfg: Any, gif: Path, steps_per_iteration: int = 2
) -> None:
    """Attach an interpolation GIF from ``src/sample.py`` to the checkpoint's W&B run."""
    import wandb

    video = wandb.Video(str(gif), format="gif")
    row = {"interpolation": video}
    log_to_checkpoint_run(ckpt_path, run_cfg, row, steps_per_iteration, "interpolation")


def log_image(
    loggers: Iterable[Logger], key: str, image: Tensor, step: int, caption: str | None = None
) -> None:
    """Log a (C, H, W) image in [0, 1] under ``key`` at generator iteration ``step`` to every
    image-capable logger; W&B shows ``caption`` under it and plots it at ``train/g_step``."""
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            import wandb

            logger.experiment.log({key: wandb.Image(image, caption=caption), G_STEP: step})
        elif isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(key, image, global_step=step)
            if caption:
                logger.experiment.add_text(f"{key}/caption", caption, global_step=step)
