"""Progress bars (rich) for long work; quiet when stderr is not a terminal and SAEDETOX_QUIET is set."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console(stderr=True)


class _Bar:
    def __init__(self, progress: Progress | None, task: int | None) -> None:
        self._p, self._t = progress, task

    def advance(self, n: int = 1, description: str | None = None) -> None:
        if self._p is not None and self._t is not None:
            kw = {"description": description} if description else {}
            self._p.update(self._t, advance=n, **kw)


@contextmanager
def progress_bar(description: str, total: int, completed: int = 0) -> Iterator[_Bar]:
    """A progress bar that degrades to nothing when SAEDETOX_QUIET=1."""
    if os.environ.get("SAEDETOX_QUIET") == "1":
        yield _Bar(None, None)
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    with progress:
        task = progress.add_task(description, total=total, completed=completed)
        yield _Bar(progress, task)
