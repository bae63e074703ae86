"""A sweep's robustness study: the runs its ``robustness:`` section names, again under each attack.

Each attacked run evaluates the same method object as its clean run (its directions, factors and
calibrated push levels are the clean run's: the clean push calibration is copied into the attacked
run's folder, so the attack never re-tunes a method) with the sweep's protocol plus ``attack``,
without capability benchmarks or clean-text perplexity (properties of the model that no prompt
changes). Runs live in ``DIR/attacks/ATTACK/RUN/`` and resume like any run. The comparison
(:func:`saedetox.report.robustness.robustness`) is written to ``DIR/robustness.json`` and as a
section of ``DIR/report.md``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from saedetox.errors import SaedetoxError
from saedetox.eval.config import EvalConfig
from saedetox.eval.run import prepare
from saedetox.experiments.config import SweepConfig
from saedetox.experiments.plan import PlannedRun
from saedetox.io import atomic_write_json, atomic_write_text
from saedetox.report.robustness import RobustnessConfig, ppl_ratio, robustness, robustness_markdown

CALIBRATION = "push_calibration.json"
#: runs one planned run with the given evaluation config into the given folder
RunAttacked = Callable[[PlannedRun, EvalConfig, Path], dict[str, Any]]


def attacked_eval(ev: EvalConfig, attack: str) -> EvalConfig:
    """An attacked run's protocol: the sweep's, under ``attack``, without capability or clean-text PPL."""
    return replace(ev, attack=attack, capability=(), clean_texts=0)


def origin_run(planned: list[PlannedRun]) -> str | None:
    """The unsteered run's name: the origin of every clean PPL ratio."""
    return next((r.name for r in planned if r.method == "none"), None)


def candidates(rb: RobustnessConfig, planned: list[PlannedRun]) -> list[PlannedRun]:
    """The runs the section may pick: those it names, and every level of a curve it names."""
    return [r for r in planned if r.name in rb.runs or (r.curve is not None and r.curve in rb.runs)]


def select_levels(
    rb: RobustnessConfig, planned: list[PlannedRun], clean: dict[str, Any]
) -> tuple[RobustnessConfig, dict[str, Any]]:
    """The section with every curve replaced by its level closest to ``ppl_ratio`` (clean runs only).

    Returns the resolved section and, per curve, the chosen run and every level's clean PPL ratio
    to the unsteered run (ties go to the lower level, the run planned first).
    """
    names = {r.name for r in planned}
    origin = origin_run(planned)
    chosen: dict[str, str] = {}
    record: dict[str, Any] = {}
    for entry in rb.runs:
        if entry in names:
            chosen[entry] = entry
            continue
        assert origin is not None and rb.ppl_ratio is not None  # experiments.validate checks both
        ratios = {r.name: ppl_ratio(clean[origin], clean[r.name]) for r in planned if r.curve == entry}
        known = {n: v for n, v in ratios.items() if v is not None}
        if not known:
            raise SaedetoxError(f"No level of curve {entry!r} has a clean PPL ratio to {origin!r}.")
        chosen[entry] = min(known, key=lambda n: abs(known[n] - rb.ppl_ratio))  # type: ignore[operator]
        record[entry] = {"run": chosen[entry], "target": rb.ppl_ratio, "ratios": ratios}
    resolved = replace(
        rb,
        runs=[chosen[e] for e in rb.runs],
        primary=chosen[rb.primary],
        baseline=chosen[rb.baseline],
    )
    return resolved, record


def attacked_runs(rb: RobustnessConfig, planned: list[PlannedRun]) -> list[tuple[str, PlannedRun]]:
    """``(attack, run)`` for every attack and every run the resolved section names, in run order."""
    named = [r for r in planned if r.name in rb.runs]
    return [(a, r) for a in rb.attacks for r in named]


def run_folder(out: Path, attack: str, name: str) -> Path:
    return out / "attacks" / attack / name


def precheck_attacked(cfg: SweepConfig, planned: list[PlannedRun], out: Path, overwrite: bool) -> None:
    """Refuse a stale attacked run before any model is loaded (as the clean runs are); every level a curve may pick."""
    rb = cfg.robustness
    for a, r in [(a, r) for a in (rb.attacks if rb else []) for r in candidates(rb, planned)] if rb else []:
        prepare(attacked_eval(cfg.evaluation, a), run_folder(out, a, r.name), cfg.data_dir, overwrite)


def as_attacked(attack: str, r: PlannedRun) -> PlannedRun:
    """The planned run relabelled for the worker pool (its name and curve carry the attack)."""
    return replace(r, name=f"{attack}/{r.name}", curve=f"{attack}/{r.curve}" if r.curve else None)


def run_attacked(
    cfg: SweepConfig,
    rb: RobustnessConfig,
    planned: list[PlannedRun],
    out: Path,
    run: RunAttacked,
    run_many: Callable[[list[PlannedRun], Callable[[PlannedRun], dict[str, Any]]], dict[str, dict[str, Any]]],
) -> dict[str, dict[str, dict[str, Any]]]:
    """Every attacked run as ``{attack: {run: metrics}}``: ``run(planned run, eval config, folder)``, spread by
    ``run_many``."""
    pairs = attacked_runs(rb, planned)
    by_name = {f"{a}/{r.name}": (a, r) for a, r in pairs}

    def one(relabelled: PlannedRun) -> dict[str, Any]:
        a, r = by_name[relabelled.name]
        folder = run_folder(out, a, r.name)
        calibration = out / "runs" / r.name / CALIBRATION
        if calibration.exists() and not (folder / CALIBRATION).exists():
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(calibration, folder / CALIBRATION)  # the clean run's push levels, exactly
        return run(r, attacked_eval(cfg.evaluation, a), folder)

    results = run_many([as_attacked(a, r) for a, r in pairs], one)
    out_map: dict[str, dict[str, dict[str, Any]]] = {}
    for name, metrics in results.items():
        a, r = by_name[name]
        out_map.setdefault(a, {})[r.name] = metrics
    return out_map


def write_robustness(
    cfg: SweepConfig,
    rb: RobustnessConfig,
    selection: dict[str, Any],
    out: Path,
    clean: dict[str, Any],
    attacked: dict[str, dict[str, dict[str, Any]]],
) -> dict[str, Any]:
    """``DIR/robustness.json`` (with the levels ``selection`` chose) and the report section, ending ``report.md``."""
    res = robustness(clean, attacked, rb, rb.judge or cfg.evaluation.judges[0])
    res["selection"] = selection
    atomic_write_json(out / "robustness.json", res)
    report = out / "report.md"
    head = report.read_text(encoding="utf-8") if report.exists() else ""
    atomic_write_text(report, head.rstrip("\n") + "\n\n" + robustness_markdown(res))
    return res
