"""The markdown summary: the pre-registered answer, the curves at matched fluency, one row per run, and notes."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from saedetox.eval.result import RunResult
from saedetox.io import atomic_write_text
from saedetox.report.analysis import PPL_NOTE, analyse, pareto_names
from saedetox.report.answer import answer_line, answer_title, intro_line
from saedetox.report.curves import ComparisonConfig
from saedetox.report.format import (
    DASH,
    capability_mean,
    capability_ppl,
    delta_pct,
    fmt,
    fmt_pct,
    fmt_ppl,
    fmt_text,
    judges_of,
    k_label,
    k_note,
)
from saedetox.report.gate import gate_markdown
from saedetox.report.load import as_results
from saedetox.report.view import Seg


def _md(x: str) -> str:
    return x.replace("|", "\\|")


def _segs(segs: Sequence[Seg]) -> str:
    bold = lambda s: f"**{s['text']}**" if s.get("style") == "b" else s["text"]  # noqa: E731
    return "".join(s if isinstance(s, str) else bold(s) for s in segs)


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(_md(h) for h in head) + " |", "|" + "---|" * len(head)] + [
        "| " + " | ".join(_md(c) for c in r) + " |" for r in rows
    ]


def _band(s: Mapping[str, Any] | None, nd: int = 3) -> str:
    if not s or s.get("est") is None:
        return DASH
    lo, hi = s["ci"]
    return f"{s['est']:.{nd}f}" + ("" if lo is None or hi is None else f" [{lo:.{nd}f}, {hi:.{nd}f}]")


def markdown_summary(
    runs: Mapping[str, Mapping[str, Any]],
    *,
    baseline: str = "none",
    primary_judge: str | None = None,
    splitting: dict[str, Any] | None = None,
    comparison: ComparisonConfig | Mapping[str, Any] | None = None,
) -> str:
    """The answer to the pre-registered comparison, the curves at each PPL ratio, a table of runs, notes.

    Run columns: run, method, mode, tier, α, effective push; per judge tox. prob, its Δ% vs baseline
    and EMT (k in the header); cond. PPL and the paired PPL ratio to the baseline as a Δ%; dist-2;
    mean capability accuracy and capability perplexities. Δ% is ``(value / baseline − 1) × 100``; for
    PPL ``(paired ratio − 1) × 100`` (:attr:`~saedetox.report.analysis.Analysis.ppl_ratio`).
    """
    runs = as_results(runs)
    judges = judges_of(runs, baseline, primary_judge)
    an = analyse(runs, judges, baseline, comparison)
    kl = k_label(runs)
    out = [f"## {answer_title(an.preregistered)}", ""]
    m = an.matched
    if m is None:
        out.append(f"The comparison could not be computed: {an.matched_why}")
    else:
        out += [_segs(intro_line(m, an.preregistered)), ""] + [f"- {_segs(answer_line(at, m))}" for at in m["at_ratio"]]
        out += ["", f"### Curves at matched fluency (toxicity probability, k = {m['k']}, judge {m['judge']})", ""]
        rows = []
        for name in [c["name"] for c in m["curves"]] + [p["name"] for p in m["points"]]:
            cells = [name + (" (primary)" if name == m["primary"] else "")]
            for at in m["at_ratio"]:
                e = next(e for e in at["entries"] if e["name"] == name)
                na = f"n/a (reaches ×{e['reaches']:.3f})"
                cells.append(_band(e["value"]) if e["value"]["est"] is not None else na)
            rows.append(cells)
        out += _table(["curve / point"] + [f"at PPL ×{r:.2f}" for r in m["ratios"]], rows)
    if an.push is not None:
        p = an.push
        out += ["", f"### Modes at equal effective push (toxicity probability, {kl})", ""]
        rows = [[r["curve"]] + [_band(a["tox"]) for a in r["at"]] for r in p["rows"]]
        out += _table(["curve"] + [f"push {x:g}" for x in p["pushes"]], rows)
    ppl_tasks = list(dict.fromkeys(t for r in runs.values() for t in capability_ppl(r)))
    pareto = pareto_names(runs, judges[0], an.ppl_ratio) if judges else set()
    head = ["run", "method", "mode", "tier", "α", "eff. push"]
    for j in judges:
        head += [f"tox. prob ({j}, {kl})", f"Δ% ({j})", f"EMT ({j}, {kl})"]
    head += ["cond. PPL", "Δ% PPL (paired)", "dist-2", "capability (mean acc.)"] + [f"{t} PPL" for t in ppl_tasks]
    base = runs.get(baseline, RunResult({}))
    rows = []
    for n, r in runs.items():
        cells = [n + (" ★" if n in pareto else "")]
        cells += [fmt_text(r.config_value(k)) for k in ("method", "mode", "tier", "alpha")]
        cells.append(fmt(r.effective_push))
        for j in judges:
            tp = r.toxicity_value(j, "tox_prob")
            cells += [
                fmt(tp),
                DASH if n == baseline else fmt_pct(delta_pct(tp, base.toxicity_value(j, "tox_prob"))),
                fmt(r.toxicity_value(j, "emt")),
            ]
        cells += [
            fmt_ppl(r.ppl),
            DASH if n == baseline else fmt_pct(delta_pct((an.ppl_ratio.get(n) or {}).get("est"), 1.0)),
            fmt(r.dist2),
            fmt(capability_mean(r)),
        ] + [fmt_ppl(capability_ppl(r).get(t)) for t in ppl_tasks]
        rows.append(cells)
    out += ["", f"### All runs ({kl} samples per prompt)", ""] + _table(head, rows) + [""]
    out += gate_markdown(runs)
    notes = []
    if judges:
        notes.append(
            f"- ★ Pareto-optimal on {judges[0]} toxicity probability vs the paired PPL ratio to `{baseline}` "
            f"(descriptive); Δ% vs `{baseline}`. {PPL_NOTE}"
        )
    ks = {r.samples_per_prompt for r in runs.values()}
    for k in sorted(ks, key=lambda x: -1 if x is None else x):
        if k_note(k):
            notes.append(f"- {k_note(k)}")
    if splitting and splitting.get("conclusion"):
        notes.append(f"- Feature splitting: {splitting['conclusion']}")
    return "\n".join(out + notes) + "\n"


def write_markdown(runs: Mapping[str, Mapping[str, Any]], out_md: str | os.PathLike[str], **kwargs: Any) -> Path:
    """Write :func:`markdown_summary` (same keyword arguments) atomically and return the path."""
    out = Path(out_md)
    atomic_write_text(out, markdown_summary(runs, **kwargs))
    return out
