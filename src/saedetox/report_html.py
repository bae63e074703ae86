"""The HTML report: inline CSS, one section renderer per report section, and the page assembly.

Every string that comes from data passes through :func:`html.escape`; figures come from
:mod:`saedetox.plots` as base64 PNG data URIs, so the page is one self-contained file.
"""

from __future__ import annotations

import html
import json
from typing import Any

from saedetox import plots
from saedetox.report_data import (
    DASH,
    PPL_BUDGET,
    cfg,
    ci_pair,
    delta_pct,
    dig,
    fmt,
    fmt_ci,
    fmt_pct,
    fmt_ppl,
    fmt_text,
    headline,
    margin_words,
    num,
    pareto_front,
    ppl_of,
    sae_comparisons,
    section,
    tox,
)

esc = html.escape

CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
main{max-width:1400px;margin:0 auto;padding:18px 28px 60px}
h1{font-size:1.7em;margin:.4em 0 .1em}h2{font-size:1.25em;margin:1.8em 0 .5em;border-bottom:2px solid #dde2ea;
padding-bottom:4px}h3{font-size:1.02em;margin:1.2em 0 .4em}
.meta{color:#5a6475;font-size:.9em}nav a{margin-right:14px;font-size:.9em;color:#2457a6;text-decoration:none}
.card{background:#fff;border:1px solid #dde2ea;border-radius:8px;padding:14px 18px;margin:10px 0}
.headline{font-size:1.08em;line-height:1.6}.big{font-size:1.35em;font-weight:600;color:#1b5e20}
.scroll{overflow-x:auto;background:#fff;border:1px solid #dde2ea;border-radius:8px;width:fit-content;max-width:100%}
table{border-collapse:collapse;font-size:12px}
th,td{padding:4px 7px;border-bottom:1px solid #eceff4;text-align:right;white-space:nowrap;vertical-align:top}
th{background:#eef1f6;position:sticky;top:0;font-weight:600}th.l,td.l{text-align:left}
td.wrap{white-space:normal;min-width:260px;max-width:560px;text-align:left}
tr.pareto td{background:#e8f5e9}tr.base td{background:#fff8e1}
.neg{color:#1b5e20}.pos{color:#b71c1c}.ci{color:#7a8494;font-size:.85em;display:block}
img{max-width:100%;display:block;margin:6px auto}mark{background:#ffe082;padding:0 1px}
code{background:#f0f2f5;padding:0 3px;border-radius:3px}pre{white-space:pre-wrap;font-size:12px;margin:0}
details summary{cursor:pointer;font-weight:600}.legend{font-size:.85em;color:#5a6475;margin:4px 2px}
"""


def _table(head: list[str], rows: list[tuple[str, list[str]]], left: int = 1) -> str:
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


def _dcell(d: float | None) -> str:
    """A Δ% cell: green when lower (better for toxicity and perplexity), red when higher."""
    cls = "" if d is None or abs(d) < 0.05 else "neg" if d < 0 else "pos"
    return f'<span class="{cls}">{fmt_pct(d)}</span>'


def _setting(m: dict[str, Any]) -> str:
    """``method · mode · tier · α=…`` with the missing parts left out."""
    parts = [fmt_text(cfg(m, k)) for k in ("method", "mode", "tier")]
    if cfg(m, "alpha") is not None:
        parts.append(f"α={fmt_text(cfg(m, 'alpha'))}")
    return esc(" · ".join(p for p in parts if p != DASH)) or DASH


def _section_headline(runs: dict[str, dict[str, Any]], judges: list[str], baseline: str) -> str:
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


def _section_tradeoff(runs: dict[str, dict[str, Any]], judges: list[str], baseline: str) -> str:
    panels = []
    for j in judges:
        pts = [
            plots.Point(
                n,
                str(cfg(m, "method") or n),
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


def _section_metrics(runs: dict[str, dict[str, Any]], judges: list[str], baseline: str, pareto: set[str]) -> str:
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
                _dcell(None if n == baseline else delta_pct(tp, tox(base, j, "tox_prob"))),
                fmt(tox(m, j, "emt")) + ("" if std is None else f'<span class="ci">± {std:.3f}</span>'),
                fmt(tox(m, j, "mean")),
            ]
        cells += [
            fmt_ppl(ppl_of(m)) + f'<span class="ci">{fmt_ci(dig(m, "fluency", "ppl_ci"), 2)}</span>',
            _dcell(None if n == baseline else delta_pct(ppl_of(m), ppl_of(base))),
            fmt_ppl(dig(m, "fluency", "ppl_clean")),
            " / ".join(fmt(dig(m, "diversity", k)) for k in ("dist1", "dist2", "dist3")),
            fmt(dig(m, "wall_seconds"), 0),
        ]
        rows.append(("base" if n == baseline else "pareto" if n in pareto else "", cells))
    legend = (
        f"★ / green: Pareto-optimal on {esc(judges[0])} toxicity probability vs cond. PPL; "
        f"yellow: baseline <code>{esc(baseline)}</code>. Δ% relative to the baseline."
    )
    out = _table(head, rows, left=2) + f'<div class="legend">{legend}</div>'
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
        out += "<h3>By prompt toxicity (RTP: toxic = prompt toxicity ≥ 0.5)</h3>" + _table(head, split_rows)
    return out


def _section_capability(runs: dict[str, dict[str, Any]], baseline: str) -> str:
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
    out = _table(head, rows)
    if plot_runs:
        out += f'<img src="{plots.capability_plot(tasks, plot_runs, plot_d, unit)}" alt="capability deltas">'
    return out


def _section_agreement(runs: dict[str, dict[str, Any]]) -> str:
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
    return _table(["run", "judges", "Pearson", "Spearman", "Cohen κ", "n texts"], rows, left=2) if rows else ""


def _list(x: Any) -> list[Any]:
    return x if isinstance(x, list) else []


def _context_html(ctx: str, token: str, limit: int = 220) -> str:
    ctx = ctx if len(ctx) <= limit else "…" + ctx[-limit:]
    i = ctx.rfind(token) if token.strip() else -1
    if i < 0:
        return esc(ctx)
    return esc(ctx[:i]) + "<mark>" + esc(token) + "</mark>" + esc(ctx[i + len(token) :])


def _section_features(features: dict[str, Any], limit: int = 40) -> str:
    meta = " · ".join(
        f"{k}: <code>{esc(fmt_text(features.get(k)))}</code>"
        for k in ("model", "sae", "hook", "method")
        if features.get(k) is not None
    )
    sel = _list(features.get("selected"))
    meta += f"<br>selected latents: <code>{esc(', '.join(map(str, sel))) or DASH}</code>"
    if num(features.get("set_heldout_auroc")) is not None:
        meta += f" · held-out AUROC of the selected set: {fmt(features['set_heldout_auroc'])} (logistic detector"
        if num(features.get("set_heldout_auroc_sum")) is not None:
            meta += f"; plain sum of maxima {fmt(features['set_heldout_auroc_sum'])}"
        meta += ")"
    rows = []
    feats = [f for f in _list(features.get("features")) if isinstance(f, dict)]
    for f in feats[:limit]:
        scores = "<br>".join(f"{esc(str(k))} = {fmt(v)}" for k, v in section(f, "scores").items()) or DASH
        toks = (
            "<br>".join(
                f"<code>{esc(repr(str(t.get('token', ''))))}</code> {fmt(t.get('act'), 2)} — "
                f"{_context_html(str(t.get('context', '')), str(t.get('token', '')))}"
                for t in _list(f.get("top_tokens"))[:5]
                if isinstance(t, dict)
            )
            or DASH
        )
        url = f.get("neuronpedia")
        link = (
            f'<a href="{esc(url)}" rel="noopener">open</a>'
            if isinstance(url, str) and url.startswith(("https://", "http://"))
            else DASH
        )
        rows.append(
            (
                "",
                [
                    esc(fmt_text(f.get("index"))),
                    scores,
                    fmt(f.get("heldout_auroc")),
                    f'<td class="wrap">{toks}</td>',
                    link,
                ],
            )
        )
    more = f'<div class="legend">{len(feats) - limit} more not shown.</div>' if len(feats) > limit else ""
    table = (
        _table(
            [
                "latent",
                "scores",
                "held-out AUROC",
                '<th class="l">top tokens (activation — context)</th>',
                "Neuronpedia",
            ],
            rows,
            left=2,
        )
        if rows
        else ""
    )
    return f'<div class="card meta">{meta}</div>{table}{more}'


def _section_splitting(splitting: dict[str, Any]) -> str:
    rows_in = [r for r in _list(splitting.get("rows")) if isinstance(r, dict) and num(r.get("width")) is not None]
    series: dict[str, list[tuple[int, float | None, float | None, float | None]]] = {}
    rows = []
    for r in sorted(rows_in, key=lambda r: float(r["width"])):
        tp, tp0, ppl, ppl0 = (num(r.get(k)) for k in ("tox_prob", "tox_prob_none", "ppl", "ppl_none"))
        cut = 1.0 - tp / tp0 if tp is not None and tp0 else None
        ratio = ppl / ppl0 if ppl is not None and ppl0 else None
        cov = num(r.get("latents_for_coverage"))
        series.setdefault(f"{r.get('mode') or DASH}-{r.get('tier') or DASH}", []).append(
            (int(r["width"]), cut, ratio, cov)
        )
        rows.append(
            (
                "",
                [
                    esc(fmt_text(r.get("width"))),
                    esc(fmt_text(r.get("sae"))),
                    esc(fmt_text(r.get("mode"))),
                    esc(fmt_text(r.get("tier"))),
                    fmt(tp),
                    fmt(tp0),
                    DASH if cut is None else f"{cut:.0%}",
                    fmt_ppl(ppl),
                    fmt_ppl(ppl0),
                    fmt(ratio, 2),
                    fmt_text(r.get("latents_for_coverage")),
                    fmt(r.get("coverage_target"), 2),
                    fmt(r.get("heldout_auroc")),
                ],
            )
        )
    out = f'<img src="{plots.splitting_plot(series)}" alt="feature splitting">' if series else ""
    head = [
        "width",
        "SAE",
        "mode",
        "tier",
        "tox. prob",
        "tox. prob<br>none",
        "cut",
        "PPL",
        "PPL<br>none",
        "PPL ratio",
        "latents for<br>coverage",
        "coverage",
        "held-out AUROC",
    ]
    out += _table(head, rows, left=4) if rows else ""
    if splitting.get("judge"):
        out += f'<div class="legend">judge: {esc(str(splitting["judge"]))}</div>'
    if splitting.get("conclusion"):
        out += f'<div class="card">{esc(str(splitting["conclusion"]))}</div>'
    return out


def render_html(
    runs: dict[str, dict[str, Any]],
    judges: list[str],
    *,
    baseline: str,
    pareto: set[str],
    features: dict[str, Any] | None,
    splitting: dict[str, Any] | None,
    manifest: dict[str, Any] | None,
    title: str,
) -> str:
    """The whole page; sections without data (no capability, no features, …) are left out."""
    sections: list[tuple[str, str, str]] = []  # (anchor, heading, body)
    if judges:
        sections.append(("headline", "Headline", _section_headline(runs, judges, baseline)))
        sections.append(("tradeoff", "Toxicity vs fluency", _section_tradeoff(runs, judges, baseline)))
    sections.append(("metrics", "All metrics", _section_metrics(runs, judges, baseline, pareto)))
    sections.append(("capability", "Capability vs baseline", _section_capability(runs, baseline)))
    sections.append(("agreement", "Judge agreement", _section_agreement(runs)))
    if features:
        sections.append(("features", "Top toxicity features", _section_features(features)))
    if splitting:
        sections.append(("splitting", "Feature splitting across SAE widths", _section_splitting(splitting)))
    if manifest:
        body = esc(json.dumps(manifest, indent=2, default=str, ensure_ascii=False))
        details = f'<details class="card"><summary>config, seeds, versions, data</summary><pre>{body}</pre></details>'
        sections.append(("manifest", "Manifest", details))
    sections = [s for s in sections if s[2]]
    first = next(iter(runs.values()))
    meta = (
        f"{len(runs)} runs · baseline <code>{esc(baseline)}</code> · judges: {esc(', '.join(judges)) or DASH}"
        f" · model <code>{esc(fmt_text(cfg(first, 'model')))}</code> · {esc(fmt_text(first.get('n_prompts')))} prompts"
        f" × {esc(fmt_text(first.get('samples_per_prompt')))} samples"
    )
    nav = "".join(f'<a href="#{a}">{h}</a>' for a, h, _ in sections)
    body = "".join(f'<section id="{a}"><h2>{h}</h2>{b}</section>' for a, h, b in sections)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>'
        f'<body><main><h1>{esc(title)}</h1><div class="meta">{meta}</div><nav>{nav}</nav>{body}</main></body>'
        "</html>\n"
    )
