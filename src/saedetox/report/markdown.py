"""The markdown summary: one row per run, the headline, SAE vs baselines and the splitting conclusion."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from saedetox.io import atomic_write_text
from saedetox.report.analysis import PPL_BUDGET, headline, margin_words, pareto_names, sae_comparisons
from saedetox.report.format import (
    DASH,
    capability_mean,
    config_value,
    delta_pct,
    dig,
    fmt,
    fmt_pct,
    fmt_ppl,
    fmt_text,
    judges_of,
    ppl_of,
    tox,
)


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
        cells = [
            n + (" ★" if n in pareto else ""),
            *(fmt_text(config_value(m, k)) for k in ("method", "mode", "tier", "alpha")),
        ]
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
