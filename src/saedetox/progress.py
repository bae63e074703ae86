"""Progress for long work: a rich bar on a terminal, a plain line every 10% otherwise.

``SAEDETOX_QUIET=1`` silences both (the test suite sets it).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console(stderr=True)


class _Bar:
    def __init__(
        self,
        progress: Progress | None,
        task: int | None,
        total: int = 0,
        completed: int = 0,
        description: str = "",
        plain: bool = False,
    ) -> None:
        self._p, self._t = progress, task
        self._plain, self._total, self._done, self._desc = plain, total, completed, description
        self._start, self._start_done, self._next = time.time(), completed, 0.1

    def advance(self, n: int = 1, description: str | None = None) -> None:
        if self._p is not None and self._t is not None:
            kw = {"description": description} if description else {}
            self._p.update(self._t, advance=n, **kw)
        elif self._plain and self._total:
            self._done += n
            frac = self._done / self._total
            if frac >= self._next or self._done == self._total:
                rate = (self._done - self._start_done) / max(time.time() - self._start, 1e-9)
                eta = (self._total - self._done) / rate if rate > 0 else float("nan")
                print(
                    f"{description or self._desc}: {self._done}/{self._total} ({frac:.0%}), eta {eta:.0f} s",
                    file=sys.stderr,
                    flush=True,
                )
                self._next = (int(frac * 10) + 1) / 10


@contextmanager
def progress_bar(description: str, total: int, completed: int = 0) -> Iterator[_Bar]:
    """A progress bar; a line per 10% when stderr is not a terminal; nothing when SAEDETOX_QUIET=1."""
    if os.environ.get("SAEDETOX_QUIET") == "1":
        yield _Bar(None, None)
        return
    if not sys.stderr.isatty():
        yield _Bar(None, None, total, completed, description, plain=True)
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
