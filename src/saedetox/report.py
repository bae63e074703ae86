"""Self-contained HTML report and markdown summary from run metrics.

Input is the ``metrics.json`` contract of DESIGN §7 (run name → metrics); every key except
``toxicity`` is optional and a missing value renders as "–". The HTML file carries its figures as
base64 PNGs and inline CSS only (no external CSS, JS or fonts), with every data string escaped.
Layout: :mod:`saedetox.report_data` (access, formatting, Pareto front, headline),
:mod:`saedetox.report_html` (sections), :mod:`saedetox.plots` (figures).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from saedetox.errors import SaedetoxError
from saedetox.io import atomic_write_text
from saedetox.report_data import (
    DASH,
    PPL_BUDGET,
    capability_mean,
    cfg,
    delta_pct,
    dig,
    fmt,
    fmt_pct,
    fmt_ppl,
    fmt_text,
    headline,
    judges_of,
    margin_words,
    pareto_front,
    pareto_names,
    ppl_of,
    sae_comparisons,
    tox,
)
from saedetox.report_html import render_html

__all__ = ["load_runs", "markdown_summary", "pareto_front", "write_markdown", "write_report"]


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


def _md(x: str) -> str:
    return x.replace("|", "\\|")


def markdown_summary(
    runs: dict[str, dict[str, Any]],
    *,
    baseline: str = "none",
    primary_judge: str | None = None,
    splitting: dict[str, Any] | None = None,
) -> str:
    """A compact markdown table (one row per run) plus the headline and the splitting conclusion.

    Columns: run, method, mode, tier, α; per judge tox. prob, its Δ% vs baseline and EMT; cond. PPL
    and its Δ%; dist-2; mean capability score. Δ% is ``(value / baseline − 1) × 100``.
    """
    judges = judges_of(runs, baseline, primary_judge)
    base = runs.get(baseline, {})
    pareto = pareto_names(runs, judges[0]) if judges else set()
    head = ["run", "method", "mode", "tier", "α"]
    for j in judges:
        head += [f"tox. prob ({j})", f"Δ% ({j})", f"EMT ({j})"]
    head += ["cond. PPL", "Δ% PPL", "dist-2", "capability"]
    lines = ["| " + " | ".join(_md(h) for h in head) + " |", "|" + "---|" * len(head)]
    for n, m in runs.items():
        cells = [n + (" ★" if n in pareto else ""), *(fmt_text(cfg(m, k)) for k in ("method", "mode", "tier", "alpha"))]
        for j in judges:
            cells += [
                fmt(tox(m, j, "tox_prob")),
                DASH if n == baseline else fmt_pct(delta_pct(tox(m, j, "tox_prob"), tox(base, j, "tox_prob"))),
                fmt(tox(m, j, "emt")),
            ]
        cells += [
            fmt_ppl(ppl_of(m)),
            DASH if n == baseline else fmt_pct(delta_pct(ppl_of(m), ppl_of(base))),
            fmt(dig(m, "diversity", "dist2")),
            fmt(capability_mean(m)),
        ]
        lines.append("| " + " | ".join(_md(c) for c in cells) + " |")
    notes = []
    for j in judges:
        h = headline(runs, j, baseline)
        if "run" in h and h["cut"] is not None:
            notes.append(
                f"- {j}: best within {PPL_BUDGET:g}× baseline PPL is `{h['run']}`, toxicity probability "
                f"{h['base_tox_prob']:.3f} → {h['tox_prob']:.3f} ({h['cut']:.0%} cut), PPL ×{h['ppl_ratio']:.2f}."
            )
    for j in judges:
        for v in sae_comparisons(runs, j, baseline):
            notes.append(
                f"- {j}: SAE vs baselines{v['scope']} — `{v['run']}` {v['tox_prob']:.3f} at PPL {v['ppl']:.2f} vs "
                f"best baseline at equal or lower PPL `{v['baseline']}` {v['base_tox_prob']:.3f} at "
                f"{v['base_ppl']:.2f} ({margin_words(v['margin'])})."
            )
    if judges:
        notes.append(f"- ★ Pareto-optimal on {judges[0]} toxicity probability vs cond. PPL; Δ% vs `{baseline}`.")
    if splitting and splitting.get("conclusion"):
        notes.append(f"- Feature splitting: {splitting['conclusion']}")
    return "\n".join(lines) + "\n\n" + "\n".join(notes) + "\n"


def write_markdown(runs: dict[str, dict[str, Any]], out_md: str | os.PathLike[str], **kwargs: Any) -> Path:
    """Write :func:`markdown_summary` (same keyword arguments) atomically and return the path."""
    out = Path(out_md)
    atomic_write_text(out, markdown_summary(runs, **kwargs))
    return out


def _is_run(obj: Any) -> bool:
    return isinstance(obj, dict) and isinstance(obj.get("toxicity"), dict)


def load_runs(paths: Sequence[str | os.PathLike[str]]) -> dict[str, dict[str, Any]]:
    """Read per-run or sweep ``metrics.json`` files (a directory means its ``metrics.json``) into one dict.

    A per-run file has a ``toxicity`` object; it is named by ``config.run`` or its parent folder. A
    sweep file maps run names to such objects (other entries are skipped). A name seen twice is
    prefixed by its file's folder.
    """
    out: dict[str, dict[str, Any]] = {}
    for p in map(Path, paths):
        p = p / "metrics.json" if p.is_dir() else p
        try:
            obj = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SaedetoxError(
                f"Metrics file {p} not found; pass RUN/metrics.json or a sweep's metrics.json."
            ) from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise SaedetoxError(f"Cannot read metrics file {p}: {e}; is it a metrics.json from saedetox?") from None
        if _is_run(obj):
            found = {str(cfg(obj, "run") or p.resolve().parent.name): obj}
        elif isinstance(obj, dict):
            found = {str(k): v for k, v in obj.items() if _is_run(v)}
        else:
            found = {}
        if not found:
            raise SaedetoxError(f"{p} holds no run metrics (no 'toxicity' object); pass a metrics.json from saedetox.")
        for name, m in found.items():
            key, i = name, 1
            while key in out:
                key = f"{p.resolve().parent.name}/{name}" + (f"#{i}" if i > 1 else "")
                i += 1
            out[key] = m
    return out
