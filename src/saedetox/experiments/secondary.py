"""A sweep's secondary question: the runs its ``secondary:`` section names, again on another prompt set.

Each run on the set evaluates the same method object as its clean run, at the level the clean
runs fixed (:mod:`saedetox.experiments.conditions`; a calibrated push level is pinned to the clean
run's), with the sweep's protocol on ``prompts`` / ``n_prompts``, without capability benchmarks or
clean-text perplexity. Runs live in ``DIR/secondary/RUN/`` and resume like any run. The
comparison (:func:`saedetox.report.secondary.secondary`) is written to ``DIR/secondary.json``;
the report shows it as a section labelled secondary.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from saedetox.eval.config import EvalConfig
from saedetox.eval.run import prepare
from saedetox.experiments.conditions import Job, RunIn, RunMany, choose_levels, origin_run, run_jobs
from saedetox.experiments.config import SweepConfig
from saedetox.experiments.plan import PlannedRun
from saedetox.io import atomic_write_json
from saedetox.report.secondary import SecondaryConfig, secondary

FOLDER = "secondary"


def secondary_eval(ev: EvalConfig, sc: SecondaryConfig) -> EvalConfig:
    """A run's protocol on the set: the sweep's, on ``prompts`` / ``n_prompts``, without capability or clean texts."""
    return replace(ev, prompts=sc.prompts, n_prompts=sc.n_prompts, capability=(), clean_texts=0)


def entries(sc: SecondaryConfig, planned: list[PlannedRun]) -> list[str]:
    """What the section runs: its runs, with the sweep's unsteered run first (the origin of PPL ratios)."""
    origin = origin_run(planned)
    return list(dict.fromkeys(([origin] if origin else []) + sc.runs))


def precheck_secondary(cfg: SweepConfig, planned: list[PlannedRun], out: Path, overwrite: bool) -> None:
    """Refuse a stale run on the set before any model is loaded; every level a curve may pick."""
    sc = cfg.secondary
    if sc is None:
        return
    named = set(entries(sc, planned))
    for r in planned:
        if r.name in named or (r.curve is not None and r.curve in named):
            prepare(secondary_eval(cfg.evaluation, sc), out / FOLDER / r.name, cfg.data_dir, overwrite)


def run_secondary(
    cfg: SweepConfig, planned: list[PlannedRun], out: Path, clean: dict[str, Any], run: RunIn, run_many: RunMany
) -> dict[str, Any]:
    """Choose the levels from the clean runs, run them on the set, write ``DIR/secondary.json``; return it."""
    sc = cfg.secondary
    assert sc is not None
    names = entries(sc, planned)
    chosen, selection = choose_levels(names, sc.ppl_ratio, planned, clean)  # fixed before any run on the set
    by_name = {r.name: r for r in planned}
    ev = secondary_eval(cfg.evaluation, sc)
    runs = list(dict.fromkeys(chosen[e] for e in names))
    jobs = [Job(FOLDER, by_name[n], ev, out / FOLDER / n) for n in runs]
    results = run_jobs(jobs, run, run_many).get(FOLDER, {})
    origin = origin_run(planned)
    res = secondary(results, sc, sc.judge or cfg.evaluation.judges[0], chosen, chosen.get(origin) if origin else None)
    res["selection"] = selection
    atomic_write_json(out / "secondary.json", res)
    return res
