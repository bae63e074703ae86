"""Progress for long work, through one switch: :func:`on_progress`.

The library is quiet by default. ``on_progress("terminal")`` (what the CLI sets) draws a rich bar
on a terminal and a plain line every 10% otherwise; ``on_progress(callback)`` hands every step to
``callback(description, done, total)`` (a notebook widget, a logger); notes (one-off lines such
as a sweep's "[2/9] run-name", or a command's phase: "loading model …") arrive with ``done == total
== 0``. :func:`warn` is the exception to "quiet by default": a ``warning:`` line on stderr (or to the
callback) about something the caller asked for that was adjusted, such as a prompt cut to the
context. ``SAEDETOX_QUIET=1`` silences everything (the test suite sets it).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Literal

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console(stderr=True)

ProgressCallback = Callable[[str, int, int], None]
_target: ProgressCallback | Literal["terminal", "lines"] | None = None
_warned: set[str] = set()  # each warning once per on_progress() setting (a command), however often it recurs


def on_progress(target: ProgressCallback | Literal["terminal"] | None) -> None:
    """Where progress goes: ``None`` (nowhere, the default), ``"terminal"`` (bars on stderr), or a callback."""
    global _target
    if target is not None and target != "terminal" and not callable(target):
        raise TypeError("on_progress takes None, 'terminal' or a callable(description, done, total).")
    _target = target
    _warned.clear()


def plain_lines() -> None:
    """Progress as plain lines even on a terminal (worker processes that share one), where it goes there."""
    global _target
    if _target == "terminal":
        _target = "lines"


def note(message: str) -> None:
    """A one-off progress line (e.g. which run of a sweep starts)."""
    if os.environ.get("SAEDETOX_QUIET") == "1" or _target is None:
        return
    if _target in ("terminal", "lines"):
        print(message, file=sys.stderr, flush=True)
    else:
        _target(message, 0, 0)


def warn(message: str) -> None:
    """One ``warning: …`` line: on stderr, or to the callback where :func:`on_progress` set one; a message
    already given is not repeated (a check that runs before and again inside a step warns once)."""
    if os.environ.get("SAEDETOX_QUIET") == "1" or message in _warned:
        return
    _warned.add(message)
    if callable(_target):
        _target(f"warning: {message}", 0, 0)
    else:
        print(f"warning: {message}", file=sys.stderr, flush=True)


class _Bar:
    def __init__(
        self,
        progress: Progress | None,
        task: int | None,
        total: int = 0,
        completed: int = 0,
        description: str = "",
        plain: bool = False,
        callback: ProgressCallback | None = None,
    ) -> None:
        self._p, self._t = progress, task
        self._plain, self._total, self._done, self._desc = plain, total, completed, description
        self._start, self._start_done, self._next = time.time(), completed, 0.1
        self._callback = callback
        if callback is not None:
            callback(description, completed, total)

    def advance(self, n: int = 1, description: str | None = None) -> None:
        if self._callback is not None:
            self._done += n
            self._callback(description or self._desc, self._done, self._total)
        elif self._p is not None and self._t is not None:
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
    """Progress of ``total`` steps, sent where :func:`on_progress` says (nowhere by default)."""
    if os.environ.get("SAEDETOX_QUIET") == "1" or _target is None:
        yield _Bar(None, None)
        return
    if callable(_target):
        yield _Bar(None, None, total, completed, description, callback=_target)
        return
    if _target == "lines" or not sys.stderr.isatty():
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
