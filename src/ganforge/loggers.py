"""Logger construction (W&B online when credentials exist, offline otherwise) and reading a W&B
run's id back (what gets logged, images included, is :mod:`ganforge.dashboard`).

A W&B service that cannot be reached (network, authentication) never takes a run down: the
logger falls back to offline mode, then to CSV. A wrong logger option is the user's to fix and
stops the run with an ``error:`` line naming it.
"""

from __future__ import annotations

import logging
import netrc
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from ganforge.errors import GanforgeError

log = logging.getLogger(__name__)


def wandb_has_credentials() -> bool:
    """True when a W&B API key is in the environment or in ~/.netrc (as `wandb login` writes).

    Reads the files itself: asking the wandb package puts it in a state where a later offline
    ``wandb.init`` demands a key.
    """
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return netrc.netrc(path).authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


#: the values ``logger.wandb.mode`` accepts
WANDB_MODES = ("auto", "online", "offline", "disabled")


def wandb_mode(mode: str = "auto") -> str:
    """Resolve ``auto`` to ``online`` or ``offline``; an explicit WANDB_MODE wins (its old
    name ``dryrun``, which Lightning's offline WandbLogger sets, reads as ``offline``)."""
    if mode not in WANDB_MODES:
        raise GanforgeError(f"logger.wandb.mode={mode!r} is not one of {', '.join(WANDB_MODES)}")
    if os.environ.get("WANDB_MODE"):
        env = os.environ["WANDB_MODE"]
        return "offline" if env == "dryrun" else env
    if mode == "auto":
        return "online" if wandb_has_credentials() else "offline"
    return mode


@rank_zero_only
def _note_no_upload(log_model: bool | str) -> None:
    log.info(
        "logger.wandb.log_model=%s: checkpoints are not uploaded from an offline run "
        "(log in with `wandb login` to upload them as artifacts)",
        log_model,
    )


@rank_zero_only
def _hint_sync(save_dir: str) -> None:
    log.info(
        "W&B is logging offline; upload the run later with: wandb sync %s",
        Path(save_dir) / "wandb" / "offline-run-*",
    )


def is_service_failure(err: Exception) -> bool:
    """Whether ``err`` from starting W&B is the service's fault (network, authentication,
    the local wandb process), as opposed to a wrong option the user must fix."""
    import wandb

    if isinstance(err, wandb.errors.UsageError):
        text = str(err).lower()
        return any(word in text for word in ("api_key", "api key", "login", "credentials"))
    return not isinstance(err, TypeError | ValueError | MisconfigurationException)


def make_wandb_logger(
    save_dir: str,
    project: str = "ganforge",
    mode: str = "auto",
    fallback_dir: str | None = None,
    log_model: bool | str = False,
    **kwargs: Any,
) -> Logger:
    """A WandbLogger in the resolved mode. If W&B cannot start (the network is down, the key
    is refused), fall back to offline mode, and if even that fails, to a CSV logger, with a
    warning; a wrong option raises :class:`GanforgeError`.

    ``log_model`` (``true``: best and last checkpoints at the end, ``all``: every save) uploads
    checkpoints as artifacts with their monitored score as metadata; offline runs cannot upload,
    so there it is turned off with one log line.
    """
    resolved = wandb_mode(mode)
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    for attempt in (resolved, "offline"):
        upload = log_model if attempt != "offline" else False
        if log_model and not upload:
            _note_no_upload(log_model)
        try:
            # mode= is passed explicitly: it must beat a WANDB_MODE=online left in the environment
            logger = WandbLogger(
                save_dir=save_dir,
                project=project,
                offline=attempt == "offline",
                log_model=upload,
                **({"mode": "offline"} if attempt == "offline" else {}),
                **kwargs,
            )
            logger.experiment  # start the run now, so a failure is caught here  # noqa: B018
            if attempt == "offline":
                _hint_sync(save_dir)
            return logger
        except Exception as err:  # W&B service failures must not take the run down
            if not is_service_failure(err):
                raise GanforgeError(f"logger.wandb: {err}") from None
            log.warning("W&B could not start in %s mode (%s)", attempt, err)
    log.warning("falling back to CSV logging in %s", fallback_dir or save_dir)
    return CSVLogger(save_dir=fallback_dir or save_dir, name="csv")


def wandb_run_id(loggers: Iterable[Logger]) -> str | None:
    """The id of the first W&B run among ``loggers`` (None without one)."""
    return next((lg.version for lg in loggers if isinstance(lg, WandbLogger)), None)
