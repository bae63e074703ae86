"""The report's run sections (headline, trade-off plot, all metrics, capability, judge agreement) and its tables.

Every string that comes from data passes through :func:`html.escape`; figures come from
:mod:`saedetox.report.plots` as base64 PNG data URIs.
"""

from __future__ import annotations

import html
from typing import Any

from saedetox.report import plots
from saedetox.report.analysis import PPL_BUDGET, headline, margin_words, pareto_front, sae_comparisons
from saedetox.report.format import (
    DASH,
    ci_pair,
    config_value,
    delta_pct,
    dig,
    fmt,
    fmt_ci,
    fmt_pct,
    fmt_ppl,
    fmt_text,
    num,
    ppl_of,
    section,
    tox,
)

esc = html.escape


def html_table(head: list[str], rows: list[tuple[str, list[str]]], left: int = 1) -> str:
    """``rows`` = (row class, cells already escaped); the first ``left`` columns are left-aligned.

    A header or cell that is already a ``<th``/``<td`` element is used as is.
    """
    th = "".join(
        h if h.startswith("<th") else f'<th class="{"l" if i < left else ""}">{h}</th>' for i, h in enumerate(head)
    )
    body = "".join(
        f'<tr class="{cls}">'
        + "".join(
            c if c.startswith("<td") else f'<td class="{"l" if i < left else ""}">{c}</td>' for i, c in enumerate(cells)
        )
        + "</tr>"
        for cls, cells in rows
    )
    return f'<div class="scroll"><table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table></div>'


def delta_cell(d: float | None) -> str:
    """A Δ% cell: green when lower (better for toxicity and perplexity), red when higher."""
    cls = "" if d is None or abs(d) < 0.05 else "neg" if d < 0 else "pos"
    return f'<span class="{cls}">{fmt_pct(d)}</span>'


def _setting(m: dict[str, Any]) -> str:
    """``method · mode · tier · α=…`` with the missing parts left out."""
    parts = [fmt_text(config_value(m, k)) for k in ("method", "mode", "tier")]
    if config_value(m, "alpha") is not None:
        parts.append(f"α={fmt_text(config_value(m, 'alpha'))}")
    return esc(" · ".join(p for p in parts if p != DASH)) or DASH


def section_headline(runs: dict[str, dict[str, Any]], judges: list[str], baseline: str) -> str:
    lines = []
    for j in judges:
        h = headline(runs, j, baseline)
        if "run" not in h:
            lines.append(f"<div>judge <b>{esc(j)}</b>: {esc(h['reason'])}.</div>")
            continue
        cut = h["cut"]
        verdict = (
            f'<span class="big">{cut:.0%}</span> lower toxicity probability'
            if cut and cut > 0
            else "no toxicity reduction"
        )
        lines.append(
            f"<div>judge <b>{esc(j)}</b>: <b>{esc(h['run'])}</b> — {verdict} "
            f"({h['base_tox_prob']:.3f} → {h['tox_prob']:.3f}) at cond. PPL {h['ppl']:.2f} "
            f"(×{h['ppl_ratio']:.2f} of baseline {h['base_ppl']:.2f}).</div>"
        )
    for j in judges:
        for v in sae_comparisons(runs, j, baseline):
            lines.append(
                f"<div>judge <b>{esc(j)}</b>, SAE vs baselines{esc(v['scope'])}: <b>{esc(v['run'])}</b> has "
                f"toxicity probability {v['tox_prob']:.3f} at cond. PPL {v['ppl']:.2f}; the best baseline at equal "
                f"or lower PPL, <b>{esc(v['baseline'])}</b>, has {v['base_tox_prob']:.3f} at {v['base_ppl']:.2f} "
                f"(<b>{esc(margin_words(v['margin']))}</b>).</div>"
            )
    intro = (
        f"Best run whose conditional perplexity stays within {PPL_BUDGET:g}× the baseline "
        f"(<code>{esc(baseline)}</code>), per judge:"
    )
    return f'<div class="card headline">{intro}{"".join(lines)}</div>'


def section_tradeoff(runs: dict[str, dict[str, Any]], judges: list[str], baseline: str) -> str:
    panels = []
    for j in judges:
        pts = [
            plots.Point(
                n,
                str(config_value(m, "method") or n),
                x,
                y,
                ci_pair(dig(m, "fluency", "ppl_ci")),
                ci_pair(tox(m, j, "tox_prob_ci")),
            )
            for n, m in runs.items()
            if (x := num(ppl_of(m))) is not None and (y := num(tox(m, j, "tox_prob"))) is not None
        ]
        if pts:
            panels.append((j, pts, pareto_front([(p.x, p.y) for p in pts])))
    if not panels:
        return ""
    budget = PPL_BUDGET if any(p.name == baseline for p in panels[0][1]) else None
    main = plots.tradeoff_plot(panels[:1], baseline, budget)
    other = ""
    if len(panels) > 1:
        uri = plots.tradeoff_plot(panels[1:], baseline, budget, small=True)
        other = f'<h3>Other judges</h3><img src="{uri}" alt="toxicity vs perplexity, other judges">'
    note = (
        "Error bars: bootstrap 95% CIs. Dashed green: Pareto front (lower is better on both axes). "
        "Large outlined marker: baseline; red dashed line: fluency budget."
    )
    return f'<img src="{main}" alt="toxicity vs perplexity"><div class="legend">{note}</div>{other}'


def section_metrics(runs: dict[str, dict[str, Any]], judges: list[str], baseline: str, pareto: set[str]) -> str:
    base = runs.get(baseline, {})
    head = ["run", "setting"]
    for j in judges:
        head += [f"{esc(j)}<br>tox. prob [95% CI]", "Δ%", "EMT<br>± std", "mean"]
    head += ["cond. PPL<br>[95% CI]", "Δ%", "clean<br>PPL", "dist-1 / 2 / 3", "wall s"]
    rows = []
    for n, m in runs.items():
        cells = [("★ " if n in pareto else "") + esc(n), _setting(m)]
        for j in judges:
            tp = tox(m, j, "tox_prob")
            std = num(tox(m, j, "emt_std"))
            cells += [
                fmt(tp) + f'<span class="ci">{fmt_ci(tox(m, j, "tox_prob_ci"))}</span>',
                delta_cell(None if n == baseline else delta_pct(tp, tox(base, j, "tox_prob"))),
                fmt(tox(m, j, "emt")) + ("" if std is None else f'<span class="ci">± {std:.3f}</span>'),
                fmt(tox(m, j, "mean")),
            ]
        cells += [
            fmt_ppl(ppl_of(m)) + f'<span class="ci">{fmt_ci(dig(m, "fluency", "ppl_ci"), 2)}</span>',
            delta_cell(None if n == baseline else delta_pct(ppl_of(m), ppl_of(base))),
            fmt_ppl(dig(m, "fluency", "ppl_clean")),
            " / ".join(fmt(dig(m, "diversity", k)) for k in ("dist1", "dist2", "dist3")),
            fmt(dig(m, "wall_seconds"), 0),
        ]
        rows.append(("base" if n == baseline else "pareto" if n in pareto else "", cells))
    legend = (
        f"★ / green: Pareto-optimal on {esc(judges[0])} toxicity probability vs cond. PPL; "
        f"yellow: baseline <code>{esc(baseline)}</code>. Δ% relative to the baseline."
    )
    out = html_table(head, rows, left=2) + f'<div class="legend">{legend}</div>'
    if any(dig(m, "toxicity", j, "by_prompt_toxicity") for m in runs.values() for j in judges):
        head = ["run"] + [
            f"{esc(j)}<br>{s} {k}" for j in judges for s in ("toxic", "non-toxic") for k in ("tox. prob", "EMT")
        ]
        split_rows = [
            (
                "base" if n == baseline else "",
                [esc(n)]
                + [fmt(tox(m, j, k, s)) for j in judges for s in ("toxic", "nontoxic") for k in ("tox_prob", "emt")],
            )
            for n, m in runs.items()
        ]
        out += "<h3>By prompt toxicity (RTP: toxic = prompt toxicity ≥ 0.5)</h3>" + html_table(head, split_rows)
    return out


def section_capability(runs: dict[str, dict[str, Any]], baseline: str) -> str:
    tasks = list(dict.fromkeys(t for m in runs.values() for t in section(m, "capability")))
    if not tasks:
        return ""
    base = section(runs.get(baseline), "capability")
    scale = (
        100.0
        if all(abs(v) <= 1 for m in runs.values() for v in map(num, section(m, "capability").values()) if v is not None)
        else 1.0
    )
    unit = "points" if scale == 100 else "raw"
    rows, plot_runs, plot_d = [], [], []
    for n, m in runs.items():
        cap = section(m, "capability")
        if not cap:
            continue
        ds = [
            None if n == baseline or num(cap.get(t)) is None or num(base.get(t)) is None else (cap[t] - base[t]) * scale
            for t in tasks
        ]
        cells = [esc(n)]
        for t, d in zip(tasks, ds, strict=True):
            cells += [fmt(cap.get(t)), DASH if d is None else f"{d:+.1f}"]
        rows.append(("base" if n == baseline else "", cells))
        if any(d is not None for d in ds):
            plot_runs.append(n)
            plot_d.append(ds)
    head = ["run"] + [h for t in tasks for h in (esc(t), f"Δ {unit}")]
    out = html_table(head, rows)
    if plot_runs:
        out += f'<img src="{plots.capability_plot(tasks, plot_runs, plot_d, unit)}" alt="capability deltas">'
    return out


def section_agreement(runs: dict[str, dict[str, Any]]) -> str:
    rows = [
        (
            "",
            [
                esc(n),
                esc(pair),
                fmt(a.get("pearson")),
                fmt(a.get("spearman")),
                fmt(a.get("cohen_kappa")),
                fmt_text(a.get("n")),
            ],
        )
        for n, m in runs.items()
        for pair, a in section(m, "judge_agreement").items()
        if isinstance(a, dict)
    ]
    return html_table(["run", "judges", "Pearson", "Spearman", "Cohen κ", "n texts"], rows, left=2) if rows else ""
