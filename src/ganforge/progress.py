"""One Rich progress bar for a long wait (metric sampling, real features, downloads), shown only
to a person watching: quiet when the console is not a terminal, under ``CI=true`` and on DDP
ranks other than 0. It draws on Rich's global console, the one Lightning's RichProgressBar
uses, so during training it appears under the training bar instead of garbling it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from lightning.pytorch.utilities import rank_zero_only
from rich import get_console
from rich.console import Console
from rich.errors import LiveError
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def progress_enabled(console: Console | None = None) -> bool:
    """Whether a bar would be seen: a terminal, not CI, rank 0."""
    if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
        return False
    if getattr(rank_zero_only, "rank", 0) != 0:
        return False
    return (console or get_console()).is_terminal


class Bar:
    """Advance with :meth:`advance`; a no-op when the bar is not shown."""

    def __init__(self, progress: Progress | None = None, task: int | None = None):
        self._progress = progress
        self._task = task

    def advance(self, n: float = 1) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, n)


@contextmanager
def progress_bar(description: str, total: float | None, unit: str = "") -> Iterator[Bar]:
    """A transient bar ``description  12/100 unit`` with elapsed and remaining time."""
    console = get_console()
    if not progress_enabled(console):
        yield Bar()
        return
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    try:
        progress.start()
    except LiveError:  # an older Rich that cannot nest live displays: stay quiet
        yield Bar()
        return
    try:
        yield Bar(progress, progress.add_task(description, total=total))
    finally:
        progress.stop()
