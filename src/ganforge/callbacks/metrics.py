"""Generative metrics during training: FID, IS, KID, precision/recall (and mode coverage)."""

from __future__ import annotations

import inspect
import logging
from dataclasses import fields
from pathlib import Path
from typing import Any

import lightning as L

from ganforge.errors import GanforgeError
from ganforge.metrics.evaluate import METRIC_NAMES, Evaluator, make_evaluator, module_sampler
from ganforge.metrics.features import resolve_feature_space

log = logging.getLogger(__name__)

#: what the callback supplies itself, not a setting
_SUPPLIED = (
    *("datamodule", "device", "write_cache", "options"),
    *("extractor", "real_features", "real_logits", "count_modes"),
)
#: the settings make_evaluator takes (conf/metrics/default.yaml), its own and the Evaluator's
EVALUATOR_SETTINGS = tuple(
    dict.fromkeys(
        name
        for name in (
            *inspect.signature(make_evaluator).parameters,
            *(f.name for f in fields(Evaluator)),
        )
        if name not in _SUPPLIED
    )
)
#: what is logged: the metrics and the spread of IS over its splits and KID over its subsets
LOGGED = (*METRIC_NAMES, "is_std", "kid_std")


def is_last_epoch(trainer: L.Trainer) -> bool:
    """Whether training stops after the current epoch (max_epochs, max_steps or a stop signal);
    reads the limits without touching the fit loop's state."""
    epochs_done = trainer.max_epochs not in (None, -1) and trainer.current_epoch + 1 >= (
        trainer.max_epochs
    )
    steps_done = trainer.max_steps not in (None, -1) and trainer.global_step >= trainer.max_steps
    return bool(epochs_done or steps_done or trainer.should_stop)


class GANMetrics(L.Callback):
    """Score the generator every ``every_n_epochs`` epochs and after the last one, logging
    ``metrics/fid``, ``metrics/is`` (``metrics/is_std``), ``metrics/kid`` (``metrics/kid_std``),
    ``metrics/precision``, ``metrics/recall`` (and ``metrics/modes``, ``metrics/kl_uniform`` in
    the ``digits`` space) to every logger, where checkpointing and sweeps can monitor them.

    Samples come from ``GANModule.sample`` with generators seeded from ``seed``: the same noise
    at every evaluation, and the training RNG stream untouched. The feature network lives in
    this callback, not in the LightningModule, so checkpoints do not grow. Real features are
    computed (or read from ``cache_dir``) when fitting starts, which is also when a missing
    Inception weights file stops the run. Under DDP every rank generates its share of the
    samples and computes the synced values. ``fast_dev_run`` smoke tests skip metrics.

    Args:
        every_n_epochs: evaluation period; 0 evaluates only after the last epoch.
        settings: :func:`~ganforge.metrics.evaluate.make_evaluator`'s settings (feature space,
            sample count, seed, cache, KID/IS/precision-recall options), the same as
            ``python src/eval.py`` takes: ``conf/metrics/default.yaml``.
    """

    def __init__(self, every_n_epochs: int = 5, **settings: Any):
        self.every_n_epochs = every_n_epochs
        if unknown := sorted(set(settings) - set(EVALUATOR_SETTINGS)):
            raise GanforgeError(
                f"callbacks.metrics: unknown settings {unknown}; known: {EVALUATOR_SETTINGS}"
            )
        if settings.get("cache_dir"):
            settings["cache_dir"] = str(Path(settings["cache_dir"]))
        self.options = settings
        self.evaluator: Evaluator | None = None

    def check_weights(self, datamodule: L.LightningDataModule) -> None:
        """Find (or download) the feature-extractor weights for ``datamodule``'s images now,
        in the main process, so missing weights stop the run before any rank starts."""
        space = resolve_feature_space(self.options["feature_space"], datamodule.name)
        if space == "inception":
            from ganforge.metrics.inception import resolve_inception_weights  # torch-fidelity

            path = self.options["feature_extractor_weights_path"]
            resolve_inception_weights(path, self.options["download"])

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.evaluator is not None or trainer.fast_dev_run:
            return
        first = trainer.is_global_zero
        if not first:  # let rank 0 fill the real-feature cache first
            trainer.strategy.barrier("ganforge_metrics_real")
        self.evaluator = make_evaluator(
            trainer.datamodule, device=pl_module.device, write_cache=first, **self.options
        )
        if first:
            trainer.strategy.barrier("ganforge_metrics_real")

    def _due(self, trainer: L.Trainer) -> bool:
        every = self.every_n_epochs
        return (every > 0 and (trainer.current_epoch + 1) % every == 0) or is_last_epoch(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.evaluator is None or not self._due(trainer):
            return
        values = self.evaluator.evaluate(
            module_sampler(pl_module), trainer.global_rank, trainer.world_size, pl_module.device
        )
        logged = {f"metrics/{k}": v for k, v in values.items() if k in LOGGED}
        for name, value in logged.items():
            pl_module.log(name, value, prog_bar=name == "metrics/fid", sync_dist=False)
        log.info(
            "epoch %d metrics: %s",
            trainer.current_epoch,
            ", ".join(f"{k}={v:.4g}" for k, v in logged.items()),
        )
