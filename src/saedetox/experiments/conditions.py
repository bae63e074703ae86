"""Runs of a sweep again under another condition: under an attack, or on another prompt set.

A condition study (the ``robustness:`` and ``secondary:`` sections) names runs of the sweep, or
strength curves that stand for one level each. The level of a curve is fixed from the **clean**
runs before any conditioned run starts: the level whose clean paired PPL ratio to the unsteered
run is closest to the section's ``ppl_ratio`` (ties: the level planned first). Optionally
(``refine``) one more clean level is run first for each such curve: the push at which the log
PPL ratio, interpolated linearly in push between the two levels that bracket the target, equals
``log(ppl_ratio)`` (:func:`refined_push`); it then competes with the planned levels under the same
closest-ratio rule. Each conditioned run evaluates the same method object as its clean run; a
calibrated push level is pinned to the clean run's (``eval.runs.push_calibration.pin_calibration``,
done by the sweep's run function), so no condition re-tunes a method.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from saedetox.errors import SaedetoxError
from saedetox.eval.config import EvalConfig
from saedetox.experiments.plan import PlannedRun
from saedetox.report.robustness import ppl_ratio

CALIBRATION = "push_calibration.json"  # a run folder's push calibration (eval.runs.push_calibration)
#: runs one planned run with the given evaluation config into the given folder
RunIn = Callable[[PlannedRun, EvalConfig, Path], dict[str, Any]]
#: runs planned runs (in worker processes when asked) with a function of one run: ``{name: metrics}``
RunMany = Callable[[list[PlannedRun], Callable[[PlannedRun], dict[str, Any]]], dict[str, dict[str, Any]]]


@dataclass(frozen=True)
class Job:
    """One conditioned run: the condition's label, the planned run, its protocol and its folder."""

    label: str
    run: PlannedRun
    ev: EvalConfig
    folder: Path


def origin_run(planned: Sequence[PlannedRun]) -> str | None:
    """The unsteered run's name: the origin of every clean PPL ratio."""
    return next((r.name for r in planned if r.method == "none"), None)


def curve_ratios(curve: str, planned: Sequence[PlannedRun], clean: dict[str, Any]) -> dict[str, float | None]:
    """Every clean level of ``curve`` and its paired PPL ratio to the unsteered run (None: no pair)."""
    origin = origin_run(planned)
    if origin is None:
        raise SaedetoxError(f"Curve {curve!r} stands for a level chosen by PPL ratio to a `none` run; add one.")
    return {r.name: ppl_ratio(clean[origin], clean[r.name]) for r in planned if r.curve == curve and r.name in clean}


def choose_levels(
    entries: Sequence[str], target: float | None, planned: Sequence[PlannedRun], clean: dict[str, Any]
) -> tuple[dict[str, str], dict[str, Any]]:
    """Each entry (a run, or a curve) as a run: a curve's level with the clean PPL ratio closest to ``target``.

    Returns ``{entry: run}`` and, per curve, ``{"run", "target", "ratios"}`` (every level's ratio).
    """
    names = {r.name for r in planned}
    chosen: dict[str, str] = {}
    record: dict[str, Any] = {}
    for entry in dict.fromkeys(entries):
        if entry in names:
            chosen[entry] = entry
            continue
        if target is None:
            raise SaedetoxError(f"Curve {entry!r} stands for one level: set the section's ppl_ratio.")
        ratios = curve_ratios(entry, planned, clean)
        known = {n: v for n, v in ratios.items() if v is not None}
        if not known:
            raise SaedetoxError(f"No level of curve {entry!r} has a clean PPL ratio to the unsteered run.")
        chosen[entry] = min(known, key=lambda n: abs(known[n] - target))
        record[entry] = {"run": chosen[entry], "target": target, "ratios": ratios}
    return chosen, record


def refined_push(points: Sequence[tuple[float, float]], target: float, digits: int = 3) -> float | None:
    """The push where the log PPL ratio, linear in push between the levels bracketing ``target``, is its log.

    ``points``: ``(push, clean PPL ratio)`` of a curve's levels. The bracket is the first pair of
    neighbouring levels (in push order) whose ratios lie on either side of the target; None when
    no pair brackets it or a level already hits it. Rounded to ``digits`` decimals.
    """
    pts = sorted((p, math.log(r)) for p, r in points if r is not None and r > 0)
    goal = math.log(target)
    for (p0, y0), (p1, y1) in zip(pts, pts[1:], strict=False):
        if y0 == goal or y1 == goal:
            return None
        if (y0 - goal) * (y1 - goal) < 0:
            return round(p0 + (goal - y0) * (p1 - p0) / (y1 - y0), digits)
    return None


def refined_levels(
    curves: Sequence[str], target: float, planned: Sequence[PlannedRun], clean: dict[str, Any]
) -> list[PlannedRun]:
    """One extra clean level per push curve of ``curves`` (:func:`refined_push`), as planned runs not yet planned."""
    names = {r.name for r in planned}
    extra = []
    for curve in dict.fromkeys(curves):
        levels = [r for r in planned if r.curve == curve and r.push is not None and r.name in clean]
        if not levels:
            continue
        ratios = curve_ratios(curve, planned, clean)
        push = refined_push([(r.push, ratios[r.name]) for r in levels], target)  # type: ignore[misc]
        if push is None or push <= 0:
            continue
        name = f"{curve}-p{push:g}"
        if name not in names:
            extra.append(replace(levels[0], name=name, push=push, level=push, capability=False))
    return extra


def run_jobs(jobs: Sequence[Job], run: RunIn, run_many: RunMany) -> dict[str, dict[str, dict[str, Any]]]:
    """Every job as ``{label: {run: metrics}}``: ``run(planned run, protocol, folder)``, spread by ``run_many``.

    Jobs are relabelled ``LABEL/RUN`` for the worker pool, so the runs of one curve under one
    condition stay in one worker.
    """
    by_name = {f"{j.label}/{j.run.name}": j for j in jobs}
    if len(by_name) != len(jobs):
        raise SaedetoxError("A condition study names one run twice.")

    def one(relabelled: PlannedRun) -> dict[str, Any]:
        j = by_name[relabelled.name]
        return run(j.run, j.ev, j.folder)

    relabelled = [
        replace(j.run, name=f"{j.label}/{j.run.name}", curve=f"{j.label}/{j.run.curve}" if j.run.curve else None)
        for j in jobs
    ]
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for name, metrics in run_many(relabelled, one).items():
        j = by_name[name]
        out.setdefault(j.label, {})[j.run.name] = metrics
    return out
