"""Leave ``report.html`` and ``report.png`` in every run folder, so a run can be judged offline.

The report needs the logged scalars on disk whatever loggers the run uses. The callback reads
them from a CSVLogger: the run's own when ``logger=csv`` (or ``many``) is chosen, otherwise one
it adds to the trainer at set-up, writing ``<run>/csv/metrics.csv``. Every scalar any logger
receives (losses, D outputs, gradient norms, ``metrics/*``) thus lands in that file too.
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import CSVLogger

from ganforge.callbacks.samples import SampleGrid
from ganforge.errors import GanforgeError
from ganforge.report import build_report

log = logging.getLogger(__name__)


class RunReport(L.Callback):
    """At the end of training, write the run report into ``dirpath`` (rank 0 only).

    Args:
        dirpath: the run folder; the report and, when needed, ``csv/metrics.csv`` go here.
        max_grids: how many sample grids (evenly spread over training) the report shows.
    """

    def __init__(self, dirpath: str, max_grids: int = 8):
        self.dirpath = Path(dirpath)
        self.max_grids = max_grids
        self._csv: CSVLogger | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit" or trainer.fast_dev_run:
            return
        self._csv = next((lg for lg in trainer.loggers if isinstance(lg, CSVLogger)), None)
        if self._csv is None:
            self._csv = CSVLogger(save_dir=self.dirpath, name="csv", version="")
            trainer.loggers = [*trainer.loggers, self._csv]

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._csv is None:
            return
        self._csv.save()  # CSVLogger buffers rows until its flush interval or teardown
        if not trainer.is_global_zero:
            return
        grids = next((cb for cb in trainer.callbacks if isinstance(cb, SampleGrid)), None)
        try:
            files = build_report(
                self.dirpath,
                samples_dir=grids.dirpath if grids else None,
                metrics_csv=Path(self._csv.experiment.metrics_file_path),
                config=getattr(pl_module, "run_config", None),
                max_grids=self.max_grids,
            )
        except GanforgeError as err:  # e.g. a run too short to log anything: nothing to show
            log.warning("no run report: %s", err)
            return
        except Exception:  # the run's results are saved; a failed report must not fail it
            log.exception(
                "the run report could not be written; retry with: python src/report.py run_dir=%s",
                self.dirpath,
            )
            return
        log.info("run report: %s (overview: %s)", files.html, files.png)
