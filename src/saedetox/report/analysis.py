"""The analyses the report shows: the Pareto front, the headline, and SAE runs against the baselines."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from saedetox.methods.base import BASELINES
from saedetox.report.format import config_value, num, ppl_of, tox

#: the headline's fluency budget: conditional perplexity at most this many times the baseline's
PPL_BUDGET = 1.25


def pareto_front(points: Sequence[tuple[Any, Any]]) -> list[int]:
    """Indices of the non-dominated points (lower is better on both axes), sorted by x then y.

    A point is dominated when another is no worse on both axes and better on one. Points with a
    missing or non-finite coordinate take no part. Exact duplicates dominate neither each other.
    """
    ok = [i for i, (x, y) in enumerate(points) if num(x) is not None and num(y) is not None]
    front = []
    for i in ok:
        xi, yi = float(points[i][0]), float(points[i][1])
        if not any(
            (xj := float(points[j][0])) <= xi and (yj := float(points[j][1])) <= yi and (xj < xi or yj < yi)
            for j in ok
            if j != i
        ):
            front.append(i)
    return sorted(front, key=lambda i: (float(points[i][0]), float(points[i][1]), i))


def pareto_names(runs: dict[str, dict[str, Any]], judge: str) -> set[str]:
    """Runs on the Pareto front of ``judge``'s toxicity probability vs conditional perplexity."""
    names = list(runs)
    pts = [(ppl_of(runs[n]), tox(runs[n], judge, "tox_prob")) for n in names]
    return {names[i] for i in pareto_front(pts)}


def headline(runs: dict[str, dict[str, Any]], judge: str, baseline: str, budget: float = PPL_BUDGET) -> dict[str, Any]:
    """Best run (lowest toxicity probability) whose cond. PPL ≤ ``budget`` × baseline's, with its relative cut."""
    base = runs.get(baseline)
    b_ppl, b_tp = (num(ppl_of(base)), num(tox(base, judge, "tox_prob"))) if base else (None, None)
    if b_ppl is None or b_tp is None or b_ppl <= 0:
        return {"judge": judge, "reason": f"baseline run {baseline!r} lacks toxicity or perplexity"}
    cands = [
        (tp, ppl, n)
        for n, m in runs.items()
        if n != baseline
        and (tp := num(tox(m, judge, "tox_prob"))) is not None
        and (ppl := num(ppl_of(m))) is not None
        and ppl <= budget * b_ppl
    ]
    if not cands:
        return {"judge": judge, "reason": f"no run keeps cond. PPL ≤ {budget:g} × baseline ({budget * b_ppl:.2f})"}
    tp, ppl, name = min(cands)
    cut = 1.0 - tp / b_tp if b_tp else None
    return {
        "judge": judge,
        "run": name,
        "tox_prob": tp,
        "base_tox_prob": b_tp,
        "cut": cut,
        "ppl": ppl,
        "base_ppl": b_ppl,
        "ppl_ratio": ppl / b_ppl if b_ppl else None,
    }


def sae_vs_baselines(runs: dict[str, dict[str, Any]], judge: str, max_ppl: float | None = None) -> dict[str, Any]:
    """The SAE run with the largest relative toxicity-probability cut vs the best baseline run whose
    conditional perplexity is equal or lower (the issue's comparison: better toxicity at no more PPL).

    ``max_ppl`` leaves out SAE runs above that conditional perplexity (e.g. the fluency budget)."""
    sae = [(n, m) for n, m in runs.items() if config_value(m, "method") == "sae"]
    base = [(n, m) for n, m in runs.items() if config_value(m, "method") in BASELINES]
    best: dict[str, Any] | None = None
    for name, m in sae:
        tp, ppl = num(tox(m, judge, "tox_prob")), num(ppl_of(m))
        if tp is None or ppl is None or (max_ppl is not None and ppl > max_ppl):
            continue
        rivals = [
            (btp, bn, bppl)
            for bn, b in base
            if (btp := num(tox(b, judge, "tox_prob"))) is not None
            and (bppl := num(ppl_of(b))) is not None
            and bppl <= ppl
        ]
        if not rivals:
            continue
        btp, bn, bppl = min(rivals)
        margin = 1.0 - tp / btp if btp else (0.0 if tp == 0 else -1.0)
        if best is None or margin > best["margin"]:
            best = {
                "judge": judge,
                "run": name,
                "tox_prob": tp,
                "ppl": ppl,
                "baseline": bn,
                "base_tox_prob": btp,
                "base_ppl": bppl,
                "margin": margin,
                "max_ppl": max_ppl,
            }
    return best or {"judge": judge, "reason": "no SAE run has a baseline run at equal or lower perplexity"}


def margin_words(margin: float) -> str:
    """``1 - sae/baseline`` in words: positive means the SAE run is less toxic."""
    return f"SAE {margin:.0%} lower" if margin >= 0 else f"SAE {-margin:.0%} higher"


def sae_comparisons(runs: dict[str, dict[str, Any]], judge: str, baseline: str) -> list[dict[str, Any]]:
    """``sae_vs_baselines`` over all SAE runs, and again within the fluency budget when that differs."""
    out = []
    best = sae_vs_baselines(runs, judge)
    if "run" in best:
        out.append({**best, "scope": ""})
    base_ppl = num(ppl_of(runs[baseline])) if baseline in runs else None
    if base_ppl is not None:
        cap = PPL_BUDGET * base_ppl
        within = sae_vs_baselines(runs, judge, max_ppl=cap)
        if "run" in within and within["run"] != best.get("run"):
            out.append({**within, "scope": f" within the fluency budget (PPL ≤ {cap:.2f})"})
    return out
