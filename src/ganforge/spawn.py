"""Spawned DDP ranks whose user errors end the job as one line, as in a single process.

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
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.strategies.launchers.multiprocessing import _MultiProcessingLauncher
from torch import multiprocessing as mp
from torch.multiprocessing.spawn import ProcessException

from ganforge.cli import _message, _user_error
from ganforge.errors import GanforgeError


class UserErrorLauncher(_MultiProcessingLauncher):
    """Lightning's multiprocessing launcher, carrying user errors from the ranks to the parent."""

    def launch(self, function: Any, *args: Any, trainer: Any = None, **kwargs: Any) -> Any:
        self._user_errors = mp.get_context(self._start_method).SimpleQueue()
        try:
            return super().launch(function, *args, trainer=trainer, **kwargs)
        except ProcessException as err:
            if self._user_errors.empty():
                raise
            raise GanforgeError(self._user_errors.get()) from err

    def _wrapping_function(self, process_idx: int, *args: Any, **kwargs: Any) -> None:
        try:
            super()._wrapping_function(process_idx, *args, **kwargs)
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
