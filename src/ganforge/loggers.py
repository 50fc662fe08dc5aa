"""Loggers: building them (W&B online when credentials exist, offline otherwise, never fatal),
logging images to those that take them, and reading a W&B run's id back."""

from __future__ import annotations

import logging
import netrc
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from torch import Tensor

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


def wandb_mode(mode: str = "auto") -> str:
    """Resolve ``auto`` to ``online`` or ``offline``; an explicit WANDB_MODE wins."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if mode == "auto":
        return "online" if wandb_has_credentials() else "offline"
    return mode


@rank_zero_only
def _hint_sync(save_dir: str) -> None:
    log.info(
        "W&B is logging offline; upload the run later with: wandb sync %s",
        Path(save_dir) / "wandb" / "offline-run-*",
    )


def make_wandb_logger(
    save_dir: str,
    project: str = "ganforge",
    mode: str = "auto",
    fallback_dir: str | None = None,
    **kwargs: Any,
) -> Logger:
    """A WandbLogger in the resolved mode. If W&B cannot start (e.g. the network is down),
    fall back to offline mode, and if even that fails, to a CSV logger, with a warning."""
    resolved = wandb_mode(mode)
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    for attempt in (resolved, "offline"):
        try:
            # mode= is passed explicitly: it must beat a WANDB_MODE=online left in the environment
            logger = WandbLogger(
                save_dir=save_dir,
                project=project,
                offline=attempt == "offline",
                **({"mode": "offline"} if attempt == "offline" else {}),
                **kwargs,
            )
            logger.experiment  # start the run now, so a failure is caught here  # noqa: B018
            if attempt == "offline":
                _hint_sync(save_dir)
            return logger
        except Exception as err:  # W&B failures must not take the run down
            log.warning("W&B could not start in %s mode (%s)", attempt, err)
    log.warning("falling back to CSV logging in %s", fallback_dir or save_dir)
    return CSVLogger(save_dir=fallback_dir or save_dir, name="csv")


def wandb_run_id(loggers: Iterable[Logger]) -> str | None:
    """The id of the first W&B run among ``loggers`` (None without one)."""
    return next((lg.version for lg in loggers if isinstance(lg, WandbLogger)), None)


def log_image(loggers: Iterable[Logger], key: str, image: Tensor, step: int) -> None:
    """Log a (C, H, W) image in [0, 1] under ``key`` at ``step`` to every image-capable logger
    (W&B, TensorBoard; CSV simply has none)."""
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image(key=key, images=[image], step=step)
        elif isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(key, image, global_step=step)
