"""Real CLI processes with injected faults, for the interruption tests.

A forkserver imports the pipeline once; each :func:`start` forks a fresh process from it that
runs ``saedetox.cli.app.main(argv)`` exactly as the ``saedetox`` command does, with its stdout and
stderr in files and, optionally, one fault:

* ``("kill", n)``: on the n-th write of generation rows (1-based), write all but the last row and
  half of the last row's line, then ``SIGKILL`` itself — a crash in the middle of writing a batch;
* ``("kill-after-judge", n)``: ``SIGKILL`` right after the n-th judge's scores were saved;
* ``("sleep", s)``: sleep ``s`` seconds after each write of rows (a slow run to interrupt or race).

Signals from outside (``SIGINT``, ``SIGKILL``) reach the child as they reach any process.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

PRELOAD = ["saedetox.cli.app", "saedetox.eval.run", "saedetox.experiments.sweep", "saedetox.methods.registry"]
_CTX: Any = None


def context() -> Any:
    global _CTX
    if _CTX is None:
        _CTX = mp.get_context("forkserver")
        _CTX.set_forkserver_preload(PRELOAD)
    return _CTX


def _child(argv: list[str], fault: tuple[str, float] | None, log: str, threads: int) -> None:
    out = os.open(log + ".out", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    err = os.open(log + ".err", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(out, 1)
    os.dup2(err, 2)
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.stderr = os.fdopen(2, "w", buffering=1)
    os.environ["SAEDETOX_QUIET"] = "1"
    # as in a terminal: a test suite started as a background job (`make test &`) inherits SIGINT ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)
    import torch

    torch.set_num_threads(threads)  # the same numerics as the process it is compared with
    if fault is not None:
        _inject(*fault)
    from saedetox.cli.app import main

    code = 0
    try:
        main(argv)
    except SystemExit as ex:
        code = int(ex.code or 0)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _inject(kind: str, arg: float) -> None:
    import json

    import saedetox.eval.runs.generation_log as log
    import saedetox.eval.runs.judge_scores as judge_scores

    if kind in ("kill", "sleep"):
        real_append = log.GenerationLog.append
        calls = {"n": 0}

        def append(self: Any, rows: list[dict[str, Any]]) -> int:
            calls["n"] += 1
            if kind == "kill" and calls["n"] == int(arg):
                new = [r for r in rows if int(r["i"]) not in self.rows]
                assert len(new) >= 2, "a mid-batch crash needs a batch of at least two rows"
                text = "".join(json.dumps(r) + "\n" for r in new[:-1]) + json.dumps(new[-1])[:20]
                with self.path.open("a", encoding="utf-8") as fh:
                    fh.write(text)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.kill(os.getpid(), signal.SIGKILL)
            written = real_append(self, rows)
            if kind == "sleep":
                time.sleep(arg)
            return written

        log.GenerationLog.append = append  # type: ignore[method-assign]
    elif kind == "kill-after-judge":
        real_save = judge_scores._save_scores
        saves = {"n": 0}

        def save(*a: Any, **kw: Any) -> None:
            real_save(*a, **kw)
            saves["n"] += 1
            if saves["n"] == int(arg):
                os.kill(os.getpid(), signal.SIGKILL)

        judge_scores._save_scores = save
    else:
        raise ValueError(kind)


def start(argv: list[str], log: Path, fault: tuple[str, float] | None = None) -> Any:
    import torch

    proc = context().Process(target=_child, args=(argv, fault, str(log), torch.get_num_threads()))
    proc.start()
    return proc


def finish(proc: Any, log: Path, timeout: float = 300) -> tuple[int, str, str]:
    """Wait for the process; (exit status, stdout, stderr). A signal death is -SIGNUM."""
    proc.join(timeout)
    if proc.is_alive():
        proc.kill()
        proc.join()
        raise TimeoutError(f"{log} did not finish in {timeout} s")
    read = lambda s: Path(str(log) + s).read_text() if Path(str(log) + s).exists() else ""  # noqa: E731
    return proc.exitcode, read(".out"), read(".err")


def run(
    argv: list[str], log: Path, fault: tuple[str, float] | None = None, timeout: float = 300
) -> tuple[int, str, str]:
    return finish(start(argv, log, fault), log, timeout)
