"""The report's first sections: the pre-registered answer, the strength curves, and modes at equal effective push.

The answer is stated whichever way it falls: at each PPL ratio fixed in the config, the primary SAE
curve against the best baseline, with the paired CI, the relative difference, the p-value and the
difference the design can resolve (the CI half-width). See :mod:`saedetox.report.matched`.
"""

from __future__ import annotations

from typing import Any

from saedetox.report.analysis import Analysis
from saedetox.report.curve_plot import curves_plot
from saedetox.report.format import DASH, k_note
from saedetox.report.view import Section, Seg, b, band, card, figure, fmt_p, h3, legend, row, table

METHOD_NOTE = (
    "Each curve runs from the none run (level 0) through its runs in level order; its toxicity probability at a "
    "PPL ratio r is interpolated linearly at the curve's first crossing of r, never extrapolated (n/a when the "
    "curve stops short of r). A point method (no strength) counts at r when its own PPL ratio is ≤ r. The best "
    "baseline is re-chosen inside every bootstrap resample (conservative). PPL ratio: exp of the mean over prompts "
    "of log PPL(run) − log PPL(none). CIs: BCa, paired bootstrap over prompts; p (bootstrap): the BCa interval's test "
    "inversion, the smallest level at which the BCa interval excludes 0, so a 95% CI excludes 0 exactly when "
    "p < 0.05 (0 when no resample lies on the other side of 0)."
)


def _pct(s: dict[str, Any] | None) -> str:
    if not s or s.get("est") is None:
        return DASH
    lo, hi = s["ci"]
    ci = "" if lo is None or hi is None else f" [{lo:+.0%}, {hi:+.0%}]"
    return f"{s['est']:+.0%}{ci}"


def _half(s: dict[str, Any] | None) -> float | None:
    if not s or s.get("ci") is None or None in s["ci"]:
        return None
    return (s["ci"][1] - s["ci"][0]) / 2


def _entry(at: dict[str, Any], name: str | None) -> dict[str, Any] | None:
    return next((e for e in at["entries"] if e["name"] == name), None)


def _verdict(d: dict[str, Any]) -> str:
    lo, hi = d["ci"]
    if lo is None or hi is None:
        return "undetermined"
    if hi < 0:
        return "SAE lower: the 95% CI excludes 0"
    if lo > 0:
        return "SAE higher: the 95% CI excludes 0"
    return "no difference resolved: the 95% CI includes 0"


def _why(at: dict[str, Any], m: dict[str, Any]) -> str:
    if m.get("primary_missing"):
        return m["primary_missing"]
    if m["primary"] is None:
        return "no SAE curve in these runs"
    e = _entry(at, m["primary"])
    if e is not None and e["value"]["est"] is None:
        return f"{m['primary']} never reaches PPL ratio ×{at['ratio']:.2f} (it reaches ×{e['reaches']:.3f}); n/a"
    return at.get("why") or "no comparison"


def answer_title(preregistered: bool) -> str:
    """The first section's title: "pre-registered" only when a config fixed the question before the runs."""
    return "The answer (pre-registered comparison)" if preregistered else "The comparison at matched fluency"


def intro_line(m: dict[str, Any], preregistered: bool = True) -> list[Seg]:
    """The question (fixed before the runs, or the report's defaults), with the protocol."""
    ratios = ", ".join(f"×{r:.2f}" for r in m["ratios"])
    lead = (
        "Question fixed before the runs: "
        if preregistered
        else "Question set by the report's defaults, not fixed before these runs (no comparison config): "
    )
    return [
        lead + "is the primary SAE curve ",
        b(m["primary"] or DASH),
        f" ({m['primary_source']}) less toxic than the best baseline at matched fluency (PPL ratio to "
        f"{m['origin']} of {ratios})? Judge {m['judge']}, toxicity probability at k = {m['k']}, "
        f"{m['n_prompts']} prompts, paired bootstrap over prompts ({m['n_boot']} resamples; BCa CIs, bootstrap p).",
    ]


def answer_line(at: dict[str, Any], m: dict[str, Any]) -> list[Seg]:
    """The answer at one PPL ratio, in words, whichever way it falls."""
    r, d = at["ratio"], at["answer"]
    if d is None or d["diff"]["est"] is None:
        return [b(f"×{r:.2f}:"), " " + _why(at, m) + "."]
    prim, best = _entry(at, m["primary"]), _entry(at, at["best_baseline"])
    diff, half = d["diff"], _half(d["diff"])
    lo, hi = diff["ci"]
    ci = "" if lo is None or hi is None else f" [{lo:+.3f}, {hi:+.3f}]"
    return [
        b(f"×{r:.2f}:"),
        f" {m['primary']} {prim['value']['est']:.3f} vs best baseline {at['best_baseline']} "
        f"{best['value']['est']:.3f}: difference {diff['est']:+.3f}{ci} ({_pct(d['rel'])} relative), "
        f"bootstrap p = {fmt_p(diff['p'])}: ",
        b(_verdict(diff)),
        f". The design resolves differences larger than about ±{half:.3f} here (paired CI half-width)."
        if half is not None
        else ".",
    ]


def _band_data(s: dict[str, Any] | None) -> dict[str, Any]:
    return (
        {"est": None, "ci": [None, None]} if not s else {"est": s.get("est"), "ci": list(s.get("ci") or [None, None])}
    )


def answer_data(m: dict[str, Any], preregistered: bool = True) -> dict[str, Any]:
    """The answer of :func:`~saedetox.report.matched.matched_fluency`'s result ``m`` as plain JSON data.

    Per PPL ratio: ``ratio``, ``primary`` and its toxicity probability, ``best_baseline`` and its,
    the ``difference`` primary − best baseline with its CI, the ``relative`` difference with its CI,
    ``p`` (bootstrap, see :func:`~saedetox.report.curves.summary`), the CI ``half_width``, the
    ``verdict`` in words; ``why`` instead when there is no answer at that ratio.
    """
    rows = []
    for at in m["at_ratio"]:
        d = at["answer"]
        row: dict[str, Any] = {"ratio": at["ratio"], "primary": m["primary"], "best_baseline": at["best_baseline"]}
        if d is None or d["diff"]["est"] is None:
            rows.append({**row, "why": _why(at, m)})
            continue
        prim, best = _entry(at, m["primary"]), _entry(at, at["best_baseline"])
        rows.append(
            {
                **row,
                "primary_tox": _band_data(prim["value"] if prim else None),
                "best_baseline_tox": _band_data(best["value"] if best else None),
                "difference": _band_data(d["diff"]),
                "relative": _band_data(d["rel"]),
                "p": d["diff"]["p"],
                "p_kind": "bootstrap",
                "half_width": _half(d["diff"]),
                "verdict": _verdict(d["diff"]),
            }
        )
    return {
        "preregistered": preregistered,
        "primary": m["primary"],
        "origin": m["origin"],
        "judge": m["judge"],
        "k": m["k"],
        "n_prompts": m["n_prompts"],
        "n_boot": m["n_boot"],
        "at_ratio": rows,
    }


def section_answer(an: Analysis, kl: str) -> Section:
    s = Section("answer", answer_title(an.preregistered))
    m = an.matched
    if m is None:
        s.blocks.append(card(f"The comparison could not be computed: {an.matched_why}"))
        return s
    lines: list[list[Seg]] = [intro_line(m, an.preregistered)]
    rows = []
    for at in m["at_ratio"]:
        lines.append(answer_line(at, m))
        d = at["answer"]
        if d is None or d["diff"]["est"] is None:
            rows.append(row([f"×{at['ratio']:.2f}"] + [DASH] * 7, "base"))
            continue
        prim, best = _entry(at, m["primary"]), _entry(at, at["best_baseline"])
        half = _half(d["diff"])
        rows.append(
            row(
                [
                    f"×{at['ratio']:.2f}",
                    band(prim["value"]),
                    at["best_baseline"],
                    band(best["value"]),
                    band(d["diff"], sign=True),
                    _pct(d["rel"]),
                    fmt_p(d["diff"]["p"]),
                    DASH if half is None else f"±{half:.3f}",
                ],
                "primary",
            )
        )
    note = k_note(m["k"])
    if note:
        lines.append([note])
    s.blocks.append(card(*lines, cls="headline"))
    head = [
        "PPL ratio",
        [m["primary"] or "primary", f"tox. prob ({kl})"],
        "best baseline",
        ["baseline", f"tox. prob ({kl})"],
        ["difference", "[95% CI]"],
        ["relative", "[95% CI]"],
        ["p", "(bootstrap)"],
        ["resolvable", "(CI half-width)"],
    ]
    s.blocks.append(table(head, rows))
    sec = [
        row([c["name"], f"×{at['ratio']:.2f}", band(c["diff"], sign=True), _pct(c["rel"]), fmt_p(c["diff"]["p"])])
        for at in m["at_ratio"]
        for c in at["secondary"]
    ]
    if sec:
        which = "the pre-registered question" if an.preregistered else "the primary question"
        s.blocks.append(h3(f"Secondary: the other SAE curves vs the best baseline (not {which})"))
        head2 = [
            "SAE curve",
            "PPL ratio",
            [f"Δ tox. prob ({kl})", "[95% CI]"],
            ["relative", "[95% CI]"],
            ["p", "(bootstrap)"],
        ]
        s.blocks.append(table(head2, sec))
    s.blocks.append(legend(METHOD_NOTE))
    if m["left_out"]:
        s.blocks.append(legend("Left out: " + "; ".join(f"{k}: {v}" for k, v in m["left_out"].items())))
    return s


def _at_cell(e: dict[str, Any] | None) -> dict[str, Any] | str:
    if e is None:
        return DASH
    if e["value"]["est"] is None:
        return f"n/a (reaches ×{e['reaches']:.3f})" if e["kind"] == "curve" else f"n/a (×{e['reaches']:.3f})"
    return band(e["value"])


def section_curves(an: Analysis) -> Section:
    s = Section("curves", "Strength curves at matched fluency")
    m = an.matched
    if m is None:
        return s
    ylabel = f"toxicity probability (k = {m['k']}, judge {m['judge']}; lower = safer)"
    uri = curves_plot(m["curves"], m["points"], m["ratios"], m["primary"], ylabel)
    s.blocks.append(figure(uri, "toxicity probability vs PPL ratio, per curve"))
    head: list[Any] = ["curve / point", "family", "runs"]
    head += [[f"tox. prob (k = {m['k']})", f"at PPL ×{r:.2f}"] for r in m["ratios"]]
    rows = []
    names = [(c["name"], c["family"], str(len(c["runs"]))) for c in m["curves"]]
    names += [(p["name"], p["family"], "point") for p in m["points"]]
    for name, fam, nruns in names:
        cells: list[Any] = [name, fam, nruns]
        cells += [_at_cell(_entry(at, name)) for at in m["at_ratio"]]
        rows.append(row(cells, "primary" if name == m["primary"] else ""))
    s.blocks.append(table(head, rows, left=2))
    s.blocks.append(
        legend(
            "Error bars and CIs: BCa, paired bootstrap over prompts (every run recomputed on each resample). "
            "n/a: the curve stops short of that ratio (its largest ratio in brackets) or the point lies above it."
        )
    )
    return s


def section_push(an: Analysis, kl: str) -> Section:
    s = Section("push", "Steering modes at equal effective push")
    p = an.push
    if p is None:
        if an.matched is not None:
            s.blocks.append(legend(f"Not available: {an.push_why}"))
        return s
    head: list[Any] = ["curve", ["largest", "push"]]
    for x in p["pushes"]:
        head += [[f"push {x:g}", h] for h in (f"tox. prob ({kl})", "PPL ratio", f"Δ vs {p['reference']}")]
    rows = []
    for r in p["rows"]:
        cells: list[Any] = [r["curve"], f"{r['max_push']:.3f}"]
        for a in r["at"]:
            cells += [band(a["tox"]), band(a["ratio"], prefix="×"), band(a["d_tox"], sign=True) if a["d_tox"] else DASH]
        rows.append(row(cells, "primary" if r["curve"] == p["reference"] else ""))
    s.blocks.append(table(head, rows))
    s.blocks.append(
        legend(
            "Effective push: mean ‖Δx‖ over generated positions / median residual norm (none = 0). Each curve is "
            "interpolated linearly in push at the configured pushes (n/a beyond its largest push); Δ: difference "
            f"in toxicity probability to {p['reference']} at the same push, paired BCa bootstrap 95% CI over prompts."
        )
    )
    return s
