"""A sweep's robustness study: the runs its ``robustness:`` section names, again under each attack.

Each attacked run evaluates the same method object as its clean run (its directions, factors and
push levels are the clean run's: a calibrated level is pinned to the clean run's, so the attack
never re-tunes a method; :mod:`saedetox.experiments.conditions`) with the sweep's protocol plus
``attack``, without capability benchmarks or clean-text perplexity (properties of the model that no
prompt changes). Runs live in ``DIR/attacks/ATTACK/RUN/`` and resume like any run. The comparison
(:func:`saedetox.report.robustness.robustness`) is written to ``DIR/robustness.json``; the report
shows it as a section.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from saedetox.eval.config import EvalConfig
from saedetox.eval.run import prepare
from saedetox.experiments.conditions import Job, RunIn, RunMany, choose_levels, run_jobs
from saedetox.experiments.config import SweepConfig
from saedetox.experiments.plan import PlannedRun
from saedetox.io import atomic_write_json
from saedetox.report.robustness import RobustnessConfig, robustness


def attacked_eval(ev: EvalConfig, attack: str) -> EvalConfig:
    """An attacked run's protocol: the sweep's, under ``attack``, without capability or clean-text PPL."""
    return replace(ev, attack=attack, capability=(), clean_texts=0)


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
    chosen, record = choose_levels(rb.runs, rb.ppl_ratio, planned, clean)
    resolved = replace(rb, runs=[chosen[e] for e in rb.runs], primary=chosen[rb.primary], baseline=chosen[rb.baseline])
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


def run_attacked(
    cfg: SweepConfig, rb: RobustnessConfig, planned: list[PlannedRun], out: Path, run: RunIn, run_many: RunMany
) -> dict[str, dict[str, dict[str, Any]]]:
    """Every attacked run as ``{attack: {run: metrics}}``: ``run(planned run, eval config, folder)``, spread by
    ``run_many``."""
    jobs = [
        Job(a, r, attacked_eval(cfg.evaluation, a), run_folder(out, a, r.name)) for a, r in attacked_runs(rb, planned)
    ]
    return run_jobs(jobs, run, run_many)


def write_robustness(
    cfg: SweepConfig,
    rb: RobustnessConfig,
    selection: dict[str, Any],
    out: Path,
    clean: dict[str, Any],
    attacked: dict[str, dict[str, dict[str, Any]]],
) -> dict[str, Any]:
    """``DIR/robustness.json``: the comparison, with the levels ``selection`` chose."""
    res = robustness(clean, attacked, rb, rb.judge or cfg.evaluation.judges[0])
    res["selection"] = selection
    atomic_write_json(out / "robustness.json", res)
    return res
