"""Spawned DDP ranks whose user errors end the job as one line, as in a single process, and
which run with the parent's float32 matmul precision.

Lightning's spawn launcher runs each rank in a child process; an exception there reaches the
parent only as text, a :class:`torch.multiprocessing.ProcessRaisedException` holding the child's
whole traceback, so ``ganforge.cli.run_job`` cannot tell a bad input from a bug and prints the
traceback wall. :class:`UserErrorLauncher` gives the children a queue: a rank that fails with a
user error (:data:`ganforge.cli.USER_ERRORS`, the same test ``run_job`` applies) puts its message
there before exiting, and the parent raises it again as a :class:`GanforgeError` chained to the
original exception (shown with ``HYDRA_FULL_ERROR=1``). Torch's process context then stops the
other ranks (SIGTERM, SIGKILL after 30 s), so nothing is left running.

Most bad input is found before spawning (``ganforge.checks``, the ``preflight`` methods); this
covers what only a rank can see.

Signals. While the ranks run, the parent forwards SIGTERM, SIGINT and the requeue signals to them
instead of dying: a parent killed by SIGTERM would take the ranks down before their
:class:`~ganforge.callbacks.preemption.Preemption` callback writes ``last.ckpt`` (torch gives
spawned ranks a parent-death signal). SIGINT is forwarded as SIGTERM, so a Ctrl-C that reaches
the whole process group is not seen twice by the ranks (their second SIGINT interrupts at once).
When the ranks stop on a signal, the parent raises Lightning's ``SIGTERMException`` like a single
process, and ``run_job`` exits with status 143.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType
from typing import Any

import torch
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.strategies.launchers.multiprocessing import _MultiProcessingLauncher
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch import multiprocessing as mp
from torch.multiprocessing.spawn import ProcessException

from ganforge.cli import EXIT_PREEMPTED, _message, _user_error
from ganforge.errors import GanforgeError

log = logging.getLogger(__name__)

#: what a rank puts on the queue when it stopped on a signal (after writing its checkpoint)
PREEMPTED = "\0preempted"
#: signals the parent passes on to the ranks (SIGINT as SIGTERM, see the module docstring)
FORWARDED = {
    signal.SIGTERM: signal.SIGTERM,
    signal.SIGINT: signal.SIGTERM,
    signal.SIGUSR1: signal.SIGUSR1,
    signal.SIGUSR2: signal.SIGUSR2,
}


class UserErrorLauncher(_MultiProcessingLauncher):
    """Lightning's multiprocessing launcher, carrying user errors from the ranks to the parent."""

    def launch(self, function: Any, *args: Any, trainer: Any = None, **kwargs: Any) -> Any:
        self._user_errors = mp.get_context(self._start_method).SimpleQueue()
        # torch keeps it per process, and Lightning carries only the deterministic flags and
        # RNG states into the ranks: without this, trainer=gpu's TF32 would stop at the parent
        self._matmul_precision = torch.get_float32_matmul_precision()
        previous = self._forward_signals()
        try:
            return super().launch(function, *args, trainer=trainer, **kwargs)
        except ProcessException as err:
            if self._user_errors.empty():
                raise
            message = self._user_errors.get()
            if message == PREEMPTED:
                raise SIGTERMException() from err
            raise GanforgeError(message) from err
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _forward_signals(self) -> dict[int, Any]:
        """Pass stop and requeue signals on to the ranks while they run; return the handlers
        they replace (none off the main thread, where Python cannot install handlers)."""
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous: dict[int, Any] = {}

        def forward(signum: int, frame: FrameType | None) -> None:
            if signum == signal.SIGINT:  # a second Ctrl-C interrupts at once, as in one process
                signal.signal(signum, previous[signum])
            log.warning(
                "received %s: the ranks finish their step and save a checkpoint",
                signal.Signals(signum).name,
            )
            self.kill(FORWARDED[signal.Signals(signum)])

        previous.update({signum: signal.signal(signum, forward) for signum in FORWARDED})
        return previous

    def _wrapping_function(self, process_idx: int, *args: Any, **kwargs: Any) -> None:
        torch.set_float32_matmul_precision(self._matmul_precision)
        try:
            super()._wrapping_function(process_idx, *args, **kwargs)
        except SIGTERMException:
            # a SystemExit with code 0: the parent would wait forever for rank 0's results
            self._user_errors.put(PREEMPTED)
            sys.exit(EXIT_PREEMPTED)
        except Exception as err:
            user = _user_error(err)
            if user is not None:
                self._user_errors.put(_message(user))
            raise


class SpawnDDPStrategy(DDPStrategy):
    """:class:`DDPStrategy` whose ranks are started by :class:`UserErrorLauncher`."""

    def _configure_launcher(self) -> None:
        super()._configure_launcher()
        if type(self._launcher) is _MultiProcessingLauncher:
            self._launcher = UserErrorLauncher(self, start_method=self._start_method)
