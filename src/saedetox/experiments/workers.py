"""A sweep's runs in parallel worker processes on the CPU: whole curves per worker, the same tokens as one process.

On a few CPU cores one process does not keep them busy (a 2-thread decode step is only ~1.5× a
1-thread one), so ``workers: N`` forks N processes after everything the runs share is computed
(model, features, baseline directions, the first run's sampling noise), gives each ``threads // N``
threads and hands each whole curves: a curve's levels stay in order in one worker, because each
level's push calibration starts from the previous level's α. Every run writes its own folder, as
in one process. The sampling noise is a function of seed, batch and step, and the generated
tokens were the same with one thread as with two (tested against a one-process sweep); sums
over many terms (the calibrated α, a push, a PPL) can round differently with fewer threads: in
the demo by at most 3 × 10⁻⁷ relative, with every toxicity number the same. Only on the CPU
(one accelerator is not shared between processes) and where ``fork`` exists; otherwise, and for
``workers: 1``, the runs go one after the other here. The split depends only on the config and
each worker encodes its own prompts for conditional PPL (not the parent's, made with another
thread count), so a sweep resumed after a crash gives exactly the numbers of an uninterrupted one.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
from collections.abc import Callable, Sequence
from multiprocessing.connection import wait
from typing import Any

import torch

from saedetox.errors import SaedetoxError
from saedetox.eval.metrics.shared_prefix import clear_context_cache
from saedetox.experiments.plan import PlannedRun
from saedetox.progress import plain_lines

RunOne = Callable[[PlannedRun], dict[str, Any]]


def worker_count(requested: int, device: torch.device, n_groups: int) -> int:
    """How many processes to use: ``requested``, at most one per core and per group; 1 off the CPU or without fork."""
    if requested <= 1 or device.type != "cpu" or "fork" not in mp.get_all_start_methods():
        return 1
    return max(1, min(requested, os.cpu_count() or 1, n_groups))


def groups_of(planned: Sequence[PlannedRun]) -> list[list[int]]:
    """Run indices grouped by curve (in planned order); a run without a curve is its own group."""
    groups: dict[str, list[int]] = {}
    out: list[list[int]] = []
    for i, r in enumerate(planned):
        if r.curve is None:
            out.append([i])
        elif r.curve in groups:
            groups[r.curve].append(i)
        else:
            groups[r.curve] = [i]
            out.append(groups[r.curve])
    return out


def assign(planned: Sequence[PlannedRun], groups: list[list[int]], workers: int) -> list[list[int]]:
    """Groups dealt to ``workers`` by cost (a run 1, lm-eval +1), largest first; each worker's in planned order."""
    cost = [sum(1 + int(planned[i].capability) for i in g) for g in groups]
    load = [0] * workers
    share: list[list[int]] = [[] for _ in range(workers)]
    for g in sorted(range(len(groups)), key=lambda j: (-cost[j], groups[j][0])):
        w = min(range(workers), key=lambda k: (load[k], k))
        load[w] += cost[g]
        share[w].extend(groups[g])
    return [sorted(s) for s in share if s]


def run_all(planned: Sequence[PlannedRun], run_one: RunOne, workers: int, threads: int) -> dict[str, dict[str, Any]]:
    """``{name: run_one(run)}`` for every planned run: here one by one, or in ``workers`` forked processes."""
    if workers <= 1:
        return {r.name: run_one(r) for r in planned}
    shares = assign(planned, groups_of(planned), workers)
    if len(shares) <= 1:
        return {r.name: run_one(r) for r in planned}
    ctx = mp.get_context("fork")
    per = max(1, threads // len(shares))
    procs, pipes = [], []
    for share in shares:
        recv, send = ctx.Pipe(duplex=False)
        p = ctx.Process(target=_work, args=([planned[i] for i in share], run_one, per, send), daemon=True)
        p.start()
        send.close()
        procs.append(p)
        pipes.append(recv)
    results: dict[str, dict[str, Any]] = {}
    open_pipes = dict(zip(pipes, procs, strict=True))
    try:
        while open_pipes:  # read whichever worker has sent: a worker blocks once its pipe's buffer is full
            for recv in wait(list(open_pipes)):
                p = open_pipes[recv]  # type: ignore[index]
                try:
                    kind, name, payload = recv.recv()  # type: ignore[union-attr]
                except EOFError:
                    p.join()
                    raise SaedetoxError(f"A sweep worker stopped without a word (exit code {p.exitcode}).") from None
                if kind == "run":
                    results[name] = payload
                elif kind == "done":
                    del open_pipes[recv]  # type: ignore[arg-type]
                    p.join()
                else:
                    raise _revive(payload, name)
    except BaseException:
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join()
        raise
    return {r.name: results[r.name] for r in planned}


def _work(runs: list[PlannedRun], run_one: RunOne, threads: int, send: Any) -> None:
    torch.set_num_threads(threads)
    # the parent's encoded prompts were computed with its thread count: a worker encodes its own, so that a
    # resumed sweep (whose parent scored nothing) gives exactly the numbers of an uninterrupted one
    clear_context_cache()
    plain_lines()  # two processes drawing bars on one terminal would garble them
    name = ""
    try:
        for r in runs:
            name = r.name
            send.send(("run", r.name, run_one(r)))
        send.send(("done", "", None))
    except BaseException as err:  # noqa: BLE001 - everything goes back to the parent, which raises it
        try:
            pickle.dumps(err)
            payload: BaseException = err
        except Exception:  # noqa: BLE001
            payload = SaedetoxError(f"{type(err).__name__}: {err}")
        send.send(("error", name, payload))
    finally:
        send.close()


def _revive(err: BaseException, name: str) -> BaseException:
    """The worker's exception, as the parent raises it (a known error keeps its one line)."""
    if isinstance(err, (SaedetoxError, KeyboardInterrupt)):
        return err
    return RuntimeError(f"run {name} failed in a sweep worker: {type(err).__name__}: {err}")
