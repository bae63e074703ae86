"""The report's study sections: the top toxicity features (features.json) and the feature-splitting study."""

from __future__ import annotations

from typing import Any

from saedetox.report import plots
from saedetox.report.format import DASH, fmt, fmt_ppl, fmt_text, num, section
from saedetox.report.sections import esc, html_table


def _list(x: Any) -> list[Any]:
    return x if isinstance(x, list) else []


def _context_html(ctx: str, token: str, limit: int = 220) -> str:
    ctx = ctx if len(ctx) <= limit else "…" + ctx[-limit:]
    i = ctx.rfind(token) if token.strip() else -1
    if i < 0:
        return esc(ctx)
    return esc(ctx[:i]) + "<mark>" + esc(token) + "</mark>" + esc(ctx[i + len(token) :])


def section_features(features: dict[str, Any], limit: int = 40) -> str:
    meta = " · ".join(
        f"{k}: <code>{esc(fmt_text(features.get(k)))}</code>"
        for k in ("model", "sae", "hook", "method")
        if features.get(k) is not None
    )
    sel = _list(features.get("selected"))
    meta += f"<br>selected latents: <code>{esc(', '.join(map(str, sel))) or DASH}</code>"
    if num(features.get("set_test_auroc")) is not None:
        meta += (
            f" · AUROC of the selected set on the test split: {fmt(features['set_test_auroc'])} "
            "(logistic detector fitted on the rank split"
        )
        if num(features.get("set_test_auroc_sum")) is not None:
            meta += f"; plain sum of maxima {fmt(features['set_test_auroc_sum'])}"
        meta += ")"
    splits = section(features, "splits")
    if splits:
        counts = {name: section(splits, name) for name in splits}
        sizes = ", ".join(
            f"{esc(str(name))} {fmt_text(n.get('toxic'))}/{fmt_text(n.get('clean'))}" for name, n in counts.items()
        )
        meta += (
            f"<br>texts toxic/clean per split: {sizes} (latents ranked on rank, filtered on select, reported on test)"
        )
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
                    fmt(f.get("select_auroc")),
                    fmt(f.get("test_auroc")),
                    f'<td class="wrap">{toks}</td>',
                    link,
                ],
            )
        )
    more = f'<div class="legend">{len(feats) - limit} more not shown.</div>' if len(feats) > limit else ""
    table = (
        html_table(
            [
                "latent",
                "scores",
                "select AUROC<br>(chose it)",
                "test AUROC",
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


def section_splitting(splitting: dict[str, Any]) -> str:
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
                    fmt(r.get("set_test_auroc")),
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
        "set AUROC<br>(test split)",
    ]
    out += html_table(head, rows, left=4) if rows else ""
    if splitting.get("judge"):
        out += f'<div class="legend">judge: {esc(str(splitting["judge"]))}</div>'
    if splitting.get("conclusion"):
        out += f'<div class="card">{esc(str(splitting["conclusion"]))}</div>'
    return out
