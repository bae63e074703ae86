"""The analyses the report shows: the pre-registered comparisons, paired differences to the baseline, the Pareto front.

The report states one answer, fixed by the sweep's ``comparison`` config before the runs: the
primary SAE curve against the best baseline at matched fluency
(:func:`~saedetox.report.matched.matched_fluency`). Every other comparison it shows is paired over
prompts. Nothing is chosen from the results after the fact: the Pareto front is descriptive only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from saedetox.errors import SaedetoxError
from saedetox.eval.metrics.paired import compare_runs
from saedetox.eval.result import RunResult
from saedetox.report.curves import ComparisonConfig
from saedetox.report.format import num
from saedetox.report.load import as_results
from saedetox.report.matched import equal_push, matched_fluency

#: how the tables define their two perplexity aggregates (stated under every table that shows them)
PPL_NOTE = (
    "cond. PPL: mean over continuations of each continuation's perplexity (DExperts). Δ% PPL (paired): "
    "(paired PPL ratio − 1) × 100, the ratio being exp of the mean over prompts of log PPL(run) − log PPL(baseline)."
)


def pareto_front(points: Sequence[tuple[Any, Any]]) -> list[int]:
    """Indices of the non-dominated points (lower is better on both axes), sorted by x then y.

    A point is dominated when another is no worse on both axes and better on one. Points with a
    missing or non-finite coordinate take no part. Exact duplicates dominate neither each other.
    """
    ok = [i for i, (x, y) in enumerate(points) if num(x) is not None and num(y) is not None]
    front = []
    for i in ok:
        xi, yi = float(points[i][0]), float(points[i][1])
        if not any(
            (xj := float(points[j][0])) <= xi and (yj := float(points[j][1])) <= yi and (xj < xi or yj < yi)
            for j in ok
            if j != i
        ):
            front.append(i)
    return sorted(front, key=lambda i: (float(points[i][0]), float(points[i][1]), i))


def pareto_names(
    runs: Mapping[str, Mapping[str, Any]], judge: str, ratios: Mapping[str, Mapping[str, Any]]
) -> set[str]:
    """Runs on the Pareto front of ``judge``'s toxicity probability vs the paired PPL ratio to the baseline.

    ``ratios`` is :attr:`Analysis.ppl_ratio`; a run without one (no per-prompt data) takes no part.
    """
    results = as_results(runs)
    names = list(results)
    pts = [((ratios.get(n) or {}).get("est"), results[n].toxicity_value(judge, "tox_prob")) for n in names]
    return {names[i] for i in pareto_front(pts)}


@dataclass
class Analysis:
    """What the report states: each part, or the one-line reason it cannot be computed from these runs."""

    judge: str | None
    baseline: str
    config: ComparisonConfig
    matched: dict[str, Any] | None = None
    matched_why: str | None = None
    push: dict[str, Any] | None = None
    push_why: str | None = None
    paired: dict[str, dict[str, Any]] = field(default_factory=dict)
    paired_why: dict[str, str] = field(default_factory=dict)
    #: the question came from a config fixed before the runs (a sweep's ``comparison``), not the defaults
    preregistered: bool = False
    #: per run, its paired PPL ratio to the baseline ``{"est", "ci"}`` (the baseline's own is 1): the
    #: ``ppl_ratio`` of :func:`~saedetox.eval.metrics.paired.compare_runs`, which the tables and Pareto marks use
    ppl_ratio: dict[str, dict[str, Any]] = field(default_factory=dict)


def analyse(
    runs: dict[str, RunResult],
    judges: list[str],
    baseline: str,
    comparison: ComparisonConfig | Mapping[str, Any] | None = None,
) -> Analysis:
    """The comparison at matched fluency (pre-registered when ``comparison`` is given: a config fixed
    before the runs; otherwise the defaults) and every run's paired differences to ``baseline``."""
    cfg = ComparisonConfig.from_mapping(comparison)
    judge = cfg.judge or (judges[0] if judges else None)
    out = Analysis(judge, baseline, cfg, preregistered=comparison is not None)
    if judge is None:
        out.matched_why = out.push_why = "no judge scored these runs"
        return out
    if judge not in judges:
        out.matched_why = out.push_why = f"the comparison's judge {judge!r} scored none of these runs"
        return out
    try:
        out.matched = matched_fluency(runs, cfg, judge, baseline)
    except SaedetoxError as err:
        out.matched_why = str(err)
    try:
        out.push = equal_push(runs, cfg, judge, baseline)
    except SaedetoxError as err:
        out.push_why = str(err)
    if baseline in runs:
        for name, m in runs.items():
            if name == baseline:
                continue
            try:
                out.paired[name] = compare_runs(
                    m, runs[baseline], judge=judge, names=(name, baseline), n_boot=cfg.n_boot, seed=cfg.seed
                )
            except SaedetoxError as err:
                out.paired_why[name] = str(err)
            else:
                out.ppl_ratio[name] = out.paired[name]["ppl_ratio"]
        if out.paired:
            out.ppl_ratio = {baseline: {"est": 1.0, "ci": [1.0, 1.0]}, **out.ppl_ratio}
    return out
