"""``report.html``: the self-contained HTML report of a set of runs, written atomically.

Input is the ``metrics.json`` contract of DESIGN §7 (run name → metrics); every key except
``toxicity`` is optional and a missing value renders as "–". Parts: :mod:`saedetox.report.format`
(access, formatting), :mod:`saedetox.report.analysis` (Pareto front, headline, SAE vs baselines),
:mod:`saedetox.report.html` with its sections, :mod:`saedetox.report.plots` (figures),
:mod:`saedetox.report.markdown` (the summary) and :mod:`saedetox.report.load` (reading metrics files).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from saedetox.errors import SaedetoxError
from saedetox.io import atomic_write_text
from saedetox.report.analysis import pareto_names
from saedetox.report.format import judges_of
from saedetox.report.html import render_html


def write_report(
    runs: dict[str, dict[str, Any]],
    out_html: str | os.PathLike[str],
    *,
    features: dict[str, Any] | None = None,
    splitting: dict[str, Any] | None = None,
    manifest: dict[str, Any] | None = None,
    baseline: str = "none",
    primary_judge: str | None = None,
    title: str = "saedetox report",
) -> Path:
    """Write the self-contained HTML report (atomically) and return its path.

    Sections: headline (best run within the fluency budget, per judge), toxicity-vs-perplexity plot
    with CIs and Pareto front, all metrics (Δ% vs ``baseline``, Pareto rows highlighted, toxic /
    non-toxic prompt split), capability deltas, judge agreement, top ``features``, the feature
    ``splitting`` study and the ``manifest``. Sections without data are left out. The primary judge
    (Pareto front, highlighted rows) is ``primary_judge`` or the baseline's first judge.
    """
    if not runs:
        raise SaedetoxError("No runs to report; pass at least one metrics.json.")
    judges = judges_of(runs, baseline, primary_judge)
    doc = render_html(
        runs,
        judges,
        baseline=baseline,
        pareto=pareto_names(runs, judges[0]) if judges else set(),
        features=features,
        splitting=splitting,
        manifest=manifest,
        title=title,
    )
    out = Path(out_html)
    atomic_write_text(out, doc)
    return out
