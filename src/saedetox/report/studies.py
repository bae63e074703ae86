"""The report's study sections: the top toxicity features (features.json) and the feature-splitting study."""

from __future__ import annotations

from typing import Any

from saedetox.report import plots
from saedetox.report.format import DASH, fmt, fmt_ppl, fmt_text, num, section
from saedetox.report.view import BR, Section, Seg, card, cell, code, figure, legend, link, mark, row, table


def _list(x: Any) -> list[Any]:
    return x if isinstance(x, list) else []


def context_segments(ctx: str, token: str, limit: int = 220) -> list[Seg]:
    """The context (its last ``limit`` characters) with the last occurrence of ``token`` marked."""
    ctx = ctx if len(ctx) <= limit else "…" + ctx[-limit:]
    i = ctx.rfind(token) if token.strip() else -1
    if i < 0:
        return [ctx]
    return [ctx[:i], mark(token), ctx[i + len(token) :]]


def _auroc_keys(features: dict[str, Any]) -> tuple[str, str, str]:
    """(per-latent key, set key, label): the test split's AUROC, or the held-out one of older files."""
    feats = [f for f in _list(features.get("features")) if isinstance(f, dict)]
    if any("test_auroc" in f for f in feats) or "set_test_auroc" in features:
        return "test_auroc", "set_test_auroc", "test AUROC"
    return "heldout_auroc", "set_heldout_auroc", "held-out AUROC"


EXTRA_HEADS = {
    "clean_open": ["clean open", "(select windows)"],
    "output_effect": ["output effect", "(toxic-token drop)"],
}


def gate_line(gate: dict[str, Any]) -> list[Seg]:
    """The gate's calibration and its false-open rate on held-out clean windows (features.json ``gate``)."""
    if num(gate.get("test_false_open")) is None:
        return []
    how = (
        f"thresholds calibrated jointly to a clean false-open rate of {fmt(gate.get('rate'))}"
        if gate.get("calibration") == "joint"
        else "per-latent thresholds at the clean sentences' quantile"
    )
    out: list[Seg] = [
        BR,
        f"gate: {how}; the set opens on {fmt(gate['test_false_open'])} of {fmt_text(gate.get('test_windows'))} "
        f"held-out clean windows of {fmt_text(gate.get('window_words'))} words",
    ]
    if gate.get("calibration") == "joint" and num(gate.get("test_false_open_quantile_gates")) is not None:
        out.append(f" (per-latent quantile thresholds: {fmt(gate['test_false_open_quantile_gates'])})")
    if num(gate.get("detector_test_false_open")) is not None:
        out.append(f"; the detector's p ≥ 0.5 on {fmt(gate['detector_test_false_open'])}")
    return out


def k_choice_line(features: dict[str, Any]) -> list[Seg]:
    """How many latents, and, when the select split chose k from a grid, each k's select-split AUROC."""
    choice = section(features, "k_choice")
    if not choice:
        return [f"k = {fmt_text(features['k'])} latents"] if "k" in features else []
    aucs = section(choice, "select_auroc")
    shown = ", ".join(f"k = {g}: {fmt(aucs.get(str(g)))}" for g in _list(choice.get("grid")))
    return [
        f"k = {fmt_text(choice.get('chosen'))} chosen on the select split from the grid "
        f"(set detector fitted on rank, select-split AUROC {shown}; ties go to the smaller k)"
    ]


def section_features(features: dict[str, Any], limit: int = 40) -> Section:
    key, set_key, label = _auroc_keys(features)
    meta: list[Seg] = []
    for k in ("model", "sae", "hook", "method"):
        if features.get(k) is not None:
            meta += [" · " if meta else "", f"{k}: ", code(fmt_text(features.get(k)))]
    sel = ", ".join(map(str, _list(features.get("selected")))) or DASH
    line2: list[Seg] = ["selected latents: ", code(sel)]
    kline = k_choice_line(features)
    line2 += [BR, *kline] if kline else []
    if num(features.get(set_key)) is not None:
        line2.append(f" · {label} of the selected set: {fmt(features[set_key])} (logistic detector")
        if num(features.get(f"{set_key}_sum")) is not None:
            line2.append(f"; plain sum of maxima {fmt(features[f'{set_key}_sum'])}")
        line2.append(")")
    splits = section(features, "splits")
    if splits:
        sizes = ", ".join(
            f"{name} {fmt_text(section(splits, name).get('toxic'))}/{fmt_text(section(splits, name).get('clean'))}"
            for name in splits
        )
        line2 += [
            BR,
            f"texts toxic/clean per split: {sizes} (latents ranked on rank, filtered on select, reported on test)",
        ]
    line2 += gate_line(section(features, "gate"))
    s = Section("features", "Top toxicity features", [card(meta, line2, cls="meta")])
    feats = [f for f in _list(features.get("features")) if isinstance(f, dict)]
    extra = [k for k in ("clean_open", "output_effect") if any(num(f.get(k)) is not None for f in feats)]
    rows = []
    for f in feats[:limit]:
        scores: list[Seg] = []
        for k, v in section(f, "scores").items():
            scores += [BR] if scores else []
            scores.append(f"{k} = {fmt(v)}")
        toks: list[Seg] = []
        for t in [t for t in _list(f.get("top_tokens")) if isinstance(t, dict)][:5]:
            tok = str(t.get("token", ""))
            toks += [BR] if toks else []
            toks += [code(repr(tok)), f" {fmt(t.get('act'), 2)} — "]
            toks += context_segments(str(t.get("context", "")), tok)
        url = f.get("neuronpedia")
        ok = isinstance(url, str) and url.startswith(("https://", "http://"))
        rows.append(
            row(
                [
                    fmt_text(f.get("index")),
                    cell(segments=scores or [DASH]),
                    fmt(f.get("select_auroc")),
                    fmt(f.get(key)),
                    *(fmt(f.get(k)) for k in extra),
                    cell(segments=toks or [DASH], wrap=True),
                    cell(segments=[link("open", url)]) if ok else DASH,
                ]
            )
        )
    if rows:
        head = [
            "latent",
            "scores",
            ["select AUROC", "(chose it)"],
            label,
            *(EXTRA_HEADS[k] for k in extra),
            "top tokens (activation — context)",
            "Neuronpedia",
        ]
        s.blocks.append(table(head, rows, left=2))
    if len(feats) > limit:
        s.blocks.append(legend(f"{len(feats) - limit} more not shown."))
    return s


def section_splitting(splitting: dict[str, Any], kl: str = "") -> Section:
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
        auroc = r.get("set_test_auroc", r.get("test_auroc", r.get("heldout_auroc")))
        rows.append(
            row(
                [
                    fmt_text(r.get("width")),
                    fmt_text(r.get("sae")),
                    fmt_text(r.get("mode")),
                    fmt_text(r.get("tier")),
                    fmt(tp),
                    fmt(tp0),
                    DASH if cut is None else f"{cut:.0%}",
                    fmt_ppl(ppl),
                    fmt_ppl(ppl0),
                    fmt(ratio, 2),
                    fmt_text(r.get("latents_for_coverage")),
                    fmt(r.get("coverage_target"), 2),
                    fmt(auroc),
                ]
            )
        )
    s = Section("splitting", "Feature splitting across SAE widths")
    if series:
        s.blocks.append(figure(plots.splitting_plot(series, kl), "feature splitting"))
    head = [
        "width",
        "SAE",
        "mode",
        "tier",
        ["tox. prob", f"({kl})" if kl else ""],
        ["tox. prob", "none"],
        "cut",
        "PPL",
        ["PPL", "none"],
        "PPL ratio",
        ["latents for", "coverage"],
        "coverage",
        ["set AUROC", "(test split)"],
    ]
    if rows:
        s.blocks.append(table(head, rows, left=4))
    if splitting.get("judge"):
        s.blocks.append(legend(f"judge: {splitting['judge']}"))
    if splitting.get("conclusion"):
        s.blocks.append(card(str(splitting["conclusion"])))
    return s
