"""``report.html``: the self-contained HTML report of a set of runs, written atomically.

Input is run name → ``metrics.json`` object; every key except ``toxicity`` is optional and a
missing value renders as "–" (older metrics files without per-prompt data still report, without
the paired analyses). Parts: :mod:`saedetox.report.format` (access, formatting),
:mod:`saedetox.report.curves` and :mod:`saedetox.report.matched` (curves, matched fluency, equal
push), :mod:`saedetox.report.analysis` (what the report states), :mod:`saedetox.report.view` and
the section builders (page model), :mod:`saedetox.report.html` with ``templates/`` (rendering),
:mod:`saedetox.report.plots` (figures), :mod:`saedetox.report.markdown` (the summary) and
:mod:`saedetox.report.load` (reading metrics files).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from saedetox.errors import SaedetoxError
from saedetox.io import atomic_write_text
from saedetox.report.analysis import analyse, pareto_names
from saedetox.report.curves import ComparisonConfig
from saedetox.report.format import judges_of
from saedetox.report.html import render_html
from saedetox.report.load import as_results
from saedetox.report.study_sections import study_sections


def write_report(
    runs: Mapping[str, Mapping[str, Any]],
    out_html: str | os.PathLike[str],
    *,
    features: dict[str, Any] | None = None,
    splitting: dict[str, Any] | None = None,
    manifest: dict[str, Any] | None = None,
    baseline: str = "none",
    primary_judge: str | None = None,
    comparison: ComparisonConfig | Mapping[str, Any] | None = None,
    title: str = "saedetox report",
    robustness: Mapping[str, Any] | None = None,
    secondary: Mapping[str, Any] | None = None,
) -> Path:
    """Write the self-contained HTML report (atomically) and return its path.

    Sections: the pre-registered answer (``comparison``: primary SAE curve vs the best baseline at
    fixed PPL ratios, paired CIs), the strength curves at matched fluency, steering modes at equal
    effective push, all runs' toxicity-vs-perplexity plot, all metrics (k and effective push stated),
    paired differences to ``baseline``, capability (accuracies; perplexities apart), judge agreement,
    top ``features``, the feature ``splitting`` study and the ``manifest``. Sections without data
    are left out. ``robustness`` and ``secondary`` (a sweep's ``robustness.json`` and
    ``secondary.json``) follow the answer as their own sections. The primary judge (Pareto front,
    comparison default) is ``primary_judge`` or the baseline's first judge.
    """
    if not runs:
        raise SaedetoxError("No runs to report; pass at least one metrics.json.")
    results = as_results(runs)
    judges = judges_of(results, baseline, primary_judge)
    an = analyse(results, judges, baseline, comparison)
    doc = render_html(
        results,
        judges,
        baseline=baseline,
        pareto=pareto_names(results, judges[0], an.ppl_ratio) if judges else set(),
        analysis=an,
        features=features,
        splitting=splitting,
        manifest=manifest,
        title=title,
        studies=study_sections(robustness, secondary),
    )
    out = Path(out_html)
    atomic_write_text(out, doc)
    return out
