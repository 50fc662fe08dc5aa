"""What every entry script shares: clear errors instead of tracebacks, and clean W&B shutdown."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import TypeVar

from hydra.errors import InstantiationException
from lightning.pytorch.utilities.exceptions import MisconfigurationException, SIGTERMException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ganforge.errors import GanforgeError

log = logging.getLogger("ganforge")
T = TypeVar("T")

#: exceptions whose message is the whole story: bad values, missing files, bad trainer flags,
#: config values that are missing or do not resolve (their message names the key)
USER_ERRORS = (
    GanforgeError,
    ValueError,
    FileNotFoundError,
    MisconfigurationException,
    OmegaConfBaseException,
)
#: exit status of a run stopped by a signal (128 + SIGTERM, as a shell reports it)
EXIT_PREEMPTED = 128 + signal.SIGTERM


def _user_error(err: BaseException) -> BaseException | None:
    """The user-facing error behind ``err`` (Hydra wraps errors raised in constructors)."""
    while err is not None:
        if isinstance(err, USER_ERRORS) and not isinstance(err, InstantiationException):
            return err
        err = err.__cause__ or (
            err.__context__ if isinstance(err, InstantiationException) else None
        )
    return None


def _message(err: BaseException) -> str:
    if isinstance(err, OmegaConfBaseException) and getattr(err, "full_key", None):
        # the key and the first line, without OmegaConf's multi-line context
        return f"{err.full_key}: {err.msg.splitlines()[0]}"
    return str(err)


def run_job(
    job: Callable[[DictConfig], T],
    cfg: DictConfig,
    validate: Callable[[DictConfig], None] | None = None,
) -> T:
    """Run ``validate(cfg)`` then ``job(cfg)``; on a user error print one clear line and exit 1
    (the full traceback with ``HYDRA_FULL_ERROR=1``); always finish the W&B run so sweep jobs
    never merge."""
    try:
        if validate is not None:
            validate(cfg)
        return job(cfg)
    except SIGTERMException:
        # Lightning stopped at a step boundary; the Preemption callback wrote the checkpoint
        log.error("training stopped by SIGTERM/SIGINT; exiting with status %d", EXIT_PREEMPTED)
        sys.exit(EXIT_PREEMPTED)
    except Exception as err:
        user = _user_error(err)
        if user is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
            log.exception("job failed; its config was:\n%s", OmegaConf.to_yaml(cfg))
            raise
        log.error("%s: %s", type(user).__name__, _message(user))
        print(
            f"error: {_message(user)}\n(set HYDRA_FULL_ERROR=1 for the full traceback)",
            file=sys.stderr,
        )
        sys.exit(1)
    finally:
        _finish_wandb()


def _finish_wandb() -> None:
    if "wandb" in sys.modules:
        import wandb

        if wandb.run is not None:
            wandb.finish()
