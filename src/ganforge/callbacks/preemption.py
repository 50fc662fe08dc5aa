"""Preemption: on SIGTERM or Ctrl-C, write a resumable checkpoint at a step boundary and stop.

Lightning's own SIGTERM handling (a flag checked after the batch-end hooks, then
``SIGTERMException``) leaves the checkpoint to the user, and a checkpoint written from
``on_exception`` sits at a loop position Lightning's restart logic does not replay exactly.
This callback therefore takes SIGTERM and the first SIGINT for the duration of the training
loop and only records them; at the next ``on_train_batch_end`` it writes ``last.ckpt`` exactly
where ``ModelCheckpoint`` would (so resuming is bitwise exact) and raises Lightning's
:class:`~lightning.pytorch.utilities.exceptions.SIGTERMException` to stop.
``ganforge.cli.run_job`` turns that into exit status 143 (128 + SIGTERM).

Requeue signals (SIGUSR1/SIGUSR2, sent by SLURM or submitit before a time limit) are taken the
same way; the handler installed for them before training (Lightning's SLURM requeue or
submitit's) runs after the checkpoint is written. See ``docs/reliability.md``.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException

from ganforge.callbacks.guard import first_nonfinite

log = logging.getLogger(__name__)


def save_checkpoint_atomic(trainer: L.Trainer, path: Path) -> None:
    """``trainer.save_checkpoint`` to a temporary file renamed over ``path`` when complete,
    so a kill during the write never leaves a truncated ``last.ckpt``."""
    tmp = path.with_name(path.name + ".tmp")
    trainer.save_checkpoint(tmp)
    if trainer.is_global_zero:
        os.replace(tmp, path)
    trainer.strategy.barrier("ganforge_preemption_save")


class Preemption(L.Callback):
    """Save ``<dirpath>/<filename>.ckpt`` and stop when SIGTERM, a first Ctrl-C or a requeue
    signal arrives.

    Args:
        dirpath: checkpoint folder; use ModelCheckpoint's so ``last.ckpt`` is the file to resume.
        filename: checkpoint name without extension.
        handle_sigint: treat the first Ctrl-C like SIGTERM (a second one interrupts at once,
            through Lightning's ``KeyboardInterrupt`` path, without a checkpoint).
        requeue_signals: signal names a cluster sends before its time limit (submitit: SIGUSR2,
            Lightning's SLURM default: SIGUSR1). They too stop the run at the step boundary
            with a checkpoint; the handler that was installed for them before training (the one
            that requeues the job) then runs.
    """

    def __init__(
        self,
        dirpath: str,
        filename: str = "last",
        handle_sigint: bool = True,
        requeue_signals: Sequence[str] = ("SIGUSR1", "SIGUSR2"),
    ):
        self.dirpath = Path(dirpath)
        self.filename = filename
        self.requeue_signals = tuple(signal.Signals[name] for name in requeue_signals)
        stop = (signal.SIGTERM, signal.SIGINT) if handle_sigint else (signal.SIGTERM,)
        self.signals = stop + self.requeue_signals
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def path(self) -> Path:
        return self.dirpath / f"{self.filename}.ckpt"

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT:  # the next Ctrl-C stops at once
            signal.signal(signal.SIGINT, self._previous.pop(signal.SIGINT))
        self.received = signum
        log.warning(
            "received %s: finishing the current step, then saving a checkpoint",
            signal.Signals(signum).name,
        )

    def _restore_handlers(self) -> dict[int, Any]:
        """Put the handlers from before training back; return them."""
        previous, self._previous = self._previous, {}
        if threading.current_thread() is threading.main_thread():
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return previous

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.received = None
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._on_signal) for s in self.signals}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        stop = self.received is not None
        if trainer.world_size > 1:  # any rank signalled: all ranks save and stop together
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if not stop:
            return
        previous = self._restore_handlers()
        bad = [n for n in ("generator", "discriminator") if first_nonfinite(getattr(pl_module, n))]
        if bad:
            log.error("stopping on a signal, but the %s holds NaN/Inf: no checkpoint written", bad)
        else:
            self.dirpath.mkdir(parents=True, exist_ok=True)
            for cb in trainer.checkpoint_callbacks:
                if cb.save_last and cb.dirpath and Path(cb.dirpath) == self.dirpath:
                    # record the file as ModelCheckpoint's own, so a run resumed into this
                    # folder keeps updating last.ckpt instead of starting last-v1.ckpt
                    cb.last_model_path = str(self.path)
            save_checkpoint_atomic(trainer, self.path)
            log.warning(
                "stopped by a signal after generator step %d; checkpoint written to %s. "
                "Resume with the same overrides plus ckpt_path=%s",
                pl_module.g_step,
                self.path,
                self.path,
            )
        handler = previous.get(self.received)
        if self.received in self.requeue_signals and callable(handler):
            handler(self.received, None)  # e.g. submitit requeues the job (and exits)
        raise SIGTERMException()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore_handlers()

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._restore_handlers()
