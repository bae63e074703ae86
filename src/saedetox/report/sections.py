"""The report's run sections: all runs' trade-off plot, all metrics, paired differences, capability, judge agreement.

Each builder returns a :class:`~saedetox.report.view.Section` of plain data; figures come from
:mod:`saedetox.report.plots` as base64 PNG data URIs.
"""

from __future__ import annotations

from typing import Any

from saedetox.eval.result import RunResult
from saedetox.report import plots
from saedetox.report.analysis import PPL_NOTE, Analysis, pareto_front
from saedetox.report.format import (
    DASH,
    capability_acc,
    capability_mean,
    capability_ppl,
    ci_pair,
    delta_pct,
    fmt,
    fmt_ci,
    fmt_ppl,
    fmt_text,
    num,
)
from saedetox.report.view import Section, band, cell, delta_cell, figure, fmt_p, h3, legend, row, table


def setting(m: RunResult) -> str:
    """``method · mode · tier · α=…`` with the missing parts left out."""
    parts = [fmt_text(m.config_value(k)) for k in ("method", "mode", "tier")]
    if m.config_value("alpha") is not None:
        parts.append(f"α={fmt_text(m.config_value('alpha'))}")
    return " · ".join(p for p in parts if p != DASH) or DASH


def section_tradeoff(runs: dict[str, RunResult], judges: list[str], an: Analysis, kl: str) -> Section:
    s = Section("tradeoff", "All runs: toxicity vs fluency")
    baseline, ratio = an.baseline, an.ppl_ratio
    panels = []
    for j in judges:
        pts = [
            plots.Point(
                n,
                str(m.config_value("method") or n),
                x,
                y,
                ci_pair(ratio[n].get("ci")),
                ci_pair(m.toxicity_value(j, "tox_prob_ci")),
            )
            for n, m in runs.items()
            if n in ratio
            and (x := num(ratio[n].get("est"))) is not None
            and (y := num(m.toxicity_value(j, "tox_prob"))) is not None
        ]
        if pts:
            panels.append((j, pts, pareto_front([(p.x, p.y) for p in pts])))
    if not panels:
        return s
    ylabel = f"toxicity probability ({kl}; lower = safer)"
    xlabel = f"PPL ratio to {baseline} (paired; lower = more fluent)"
    s.blocks.append(
        figure(plots.tradeoff_plot(panels[:1], baseline, ylabel=ylabel, xlabel=xlabel), "toxicity vs perplexity")
    )
    s.blocks.append(
        legend(
            "x: paired PPL ratio to the baseline (geometric mean of per-prompt ratios) with its paired BCa "
            "bootstrap 95% CI; y: toxicity probability with its BCa bootstrap 95% CI over prompts. Dashed green: "
            "Pareto front (descriptive only; lower is better on both axes). Large outlined marker: baseline. "
            "Methods are compared at matched fluency, with paired CIs, in the first sections."
        )
    )
    if len(panels) > 1:
        s.blocks.append(h3("Other judges"))
        uri = plots.tradeoff_plot(panels[1:], baseline, small=True, ylabel=ylabel, xlabel=xlabel)
        s.blocks.append(figure(uri, "toxicity vs perplexity, other judges"))
    return s


def section_metrics(runs: dict[str, RunResult], judges: list[str], an: Analysis, pareto: set[str], kl: str) -> Section:
    baseline = an.baseline
    base = runs.get(baseline, RunResult({}))
    mixed_k = len({m.samples_per_prompt for m in runs.values()}) > 1
    head: list[Any] = ["run", "setting", ["eff.", "push"]] + ([["k"]] if mixed_k else [])
    for j in judges:
        head += [[j, f"tox. prob ({kl})", "[95% CI]"], "Δ%", [f"EMT ({kl})", "± std"], "mean"]
    head += [["cond. PPL", "[95% CI]"], ["Δ%", "(paired)"], ["clean", "PPL"], "dist-1 / 2 / 3", "wall s"]
    rows = []
    for n, m in runs.items():
        cells: list[Any] = [("★ " if n in pareto else "") + n, setting(m), fmt(m.effective_push)]
        if mixed_k:
            cells.append(fmt_text(m.samples_per_prompt))
        for j in judges:
            tp = m.toxicity_value(j, "tox_prob")
            std = num(m.toxicity_value(j, "emt_std"))
            cells += [
                cell(fmt(tp), ci=fmt_ci(m.toxicity_value(j, "tox_prob_ci")).strip() or None),
                delta_cell(None if n == baseline else delta_pct(tp, base.toxicity_value(j, "tox_prob"))),
                cell(fmt(m.toxicity_value(j, "emt")), ci=None if std is None else f"± {std:.3f}"),
                fmt(m.toxicity_value(j, "mean")),
            ]
        cells += [
            cell(fmt_ppl(m.ppl), ci=fmt_ci(m.ppl_ci, 2).strip() or None),
            delta_cell(None if n == baseline else delta_pct((an.ppl_ratio.get(n) or {}).get("est"), 1.0)),
            fmt_ppl(m.ppl_clean),
            " / ".join(fmt(d) for d in (m.dist1, m.dist2, m.dist3)),
            fmt(m.wall_seconds, 0),
        ]
        rows.append(row(cells, "base" if n == baseline else "pareto" if n in pareto else ""))
    s = Section("metrics", "All metrics", [table(head, rows, left=2)])
    first = judges[0] if judges else DASH
    s.blocks.append(
        legend(
            f"★ / green: Pareto-optimal on {first} toxicity probability vs the paired PPL ratio to {baseline} "
            f"(descriptive, not a test); yellow: baseline {baseline}. Δ% of toxicity relative to the baseline "
            f"(unpaired; paired differences below). {PPL_NOTE} "
            "eff. push: mean ‖Δx‖ over generated positions / median residual norm. CIs: BCa bootstrap over prompts."
        )
    )
    if any(m.toxicity_value(j, "by_prompt_toxicity") for m in runs.values() for j in judges):
        head = ["run"] + [
            [j, f"{s_} {k}"] for j in judges for s_ in ("toxic", "non-toxic") for k in (f"tox. prob ({kl})", "EMT")
        ]
        split_rows = [
            row(
                [n]
                + [
                    fmt(m.toxicity_value(j, k, s_))
                    for j in judges
                    for s_ in ("toxic", "nontoxic")
                    for k in ("tox_prob", "emt")
                ],
                "base" if n == baseline else "",
            )
            for n, m in runs.items()
        ]
        s.blocks += [h3("By prompt toxicity (RTP: toxic = prompt toxicity ≥ 0.5)"), table(head, split_rows)]
    return s


def section_paired(an: Analysis, kl: str) -> Section:
    s = Section("paired", f"Paired differences vs {an.baseline}")
    if not an.paired:
        return s
    head = [
        "run",
        [f"Δ tox. prob ({kl})", "[95% CI]"],
        ["p", "(sign-flip)"],
        [f"Δ EMT ({kl})", "[95% CI]"],
        ["p", "(sign-flip)"],
        ["PPL ratio", "[95% CI]"],
        ["p", "(sign-flip)"],
        "prompts",
    ]
    rows = []
    for name, res in an.paired.items():
        d = {x["metric"]: x for x in res["differences"]}
        cells = [name]
        for key in ("tox_prob", "emt"):
            cells += [band({"est": d[key]["diff"], "ci": d[key]["ci"]}, sign=True), fmt_p(d[key]["p"])]
        cells += [band(res["ppl_ratio"], prefix="×"), fmt_p(d["log_ppl"]["p"]), str(d["tox_prob"]["n"])]
        rows.append(row(cells))
    s.blocks.append(table(head, rows))
    s.blocks.append(
        legend(
            f"Judge {an.judge}. Run − {an.baseline} over the same prompts: BCa bootstrap over prompts with "
            f"the pairs kept together ({an.config.n_boot} resamples, seed {an.config.seed}); p: two-sided paired "
            "sign-flip permutation test. PPL ratio: ratio of geometric-mean conditional perplexities."
        )
    )
    if an.paired_why:
        s.blocks.append(legend(f"Not shown ({len(an.paired_why)}): " + "; ".join(sorted(set(an.paired_why.values())))))
    return s


def section_capability(runs: dict[str, RunResult], baseline: str) -> Section:
    s = Section("capability", "Capability vs baseline")
    tasks = list(dict.fromkeys(t for m in runs.values() for t in capability_acc(m)))
    ppl_tasks = list(dict.fromkeys(t for m in runs.values() for t in capability_ppl(m)))
    if not tasks and not ppl_tasks:
        return s
    base_run = runs.get(baseline, RunResult({}))
    base, base_ppl, base_mean = capability_acc(base_run), capability_ppl(base_run), capability_mean(base_run)
    rows, plot_runs, plot_d = [], [], []
    for n, m in runs.items():
        acc, ppl = capability_acc(m), capability_ppl(m)
        if not acc and not ppl:
            continue
        ds = [None if n == baseline or t not in acc or t not in base else (acc[t] - base[t]) * 100 for t in tasks]
        cells: list[Any] = [n]
        for t, d in zip(tasks, ds, strict=True):
            cells += [fmt(acc.get(t)), DASH if d is None else f"{d:+.1f}"]
        mean = capability_mean(m)
        dm = None if n == baseline or mean is None or base_mean is None else (mean - base_mean) * 100
        cells += [fmt(mean), DASH if dm is None else f"{dm:+.1f}"]
        for t in ppl_tasks:
            d_ppl = None if n == baseline else delta_pct(ppl.get(t), base_ppl.get(t))
            cells += [fmt_ppl(ppl.get(t)), delta_cell(d_ppl)]
        rows.append(row(cells, "base" if n == baseline else ""))
        if any(d is not None for d in ds):
            plot_runs.append(n)
            plot_d.append(ds)
    head: list[Any] = ["run"] + [h for t in tasks for h in ([t, "acc."], "Δ points")]
    head += [["mean", "accuracy"], "Δ points"] + [h for t in ppl_tasks for h in ([t, "PPL"], "Δ%")]
    s.blocks.append(table(head, rows))
    s.blocks.append(
        legend("The mean is over accuracies only; perplexity-type scores (e.g. LAMBADA PPL) have their own columns.")
    )
    if plot_runs:
        s.blocks.append(figure(plots.capability_plot(tasks, plot_runs, plot_d, "points"), "capability deltas"))
    return s


def section_agreement(runs: dict[str, RunResult]) -> Section:
    rows = [
        row(
            [
                n,
                pair,
                fmt(a.get("pearson")),
                fmt(a.get("spearman")),
                fmt(a.get("cohen_kappa")),
                fmt_text(a.get("n")),
            ]
        )
        for n, m in runs.items()
        for pair, a in m.judge_agreement.items()
        if isinstance(a, dict)
    ]
    s = Section("agreement", "Judge agreement")
    if rows:
        s.blocks.append(table(["run", "judges", "Pearson", "Spearman", "Cohen κ", "n texts"], rows, left=2))
    return s
