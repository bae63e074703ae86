"""Read-only views over run metrics: safe access, number formatting and the analyses the report shows.

Run metrics follow DESIGN §7 (``metrics.json``); any key may be missing. Accessors return ``None``
for a missing or non-finite value and formatters render it as :data:`DASH`. Used by
:mod:`saedetox.report` (markdown, loading) and :mod:`saedetox.report_html`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

from saedetox.errors import SaedetoxError

DASH = "–"
#: the headline's fluency budget: conditional perplexity at most this many times the baseline's
PPL_BUDGET = 1.25

# ----------------------------------------------------------------------------- access and formatting


def dig(d: Any, *path: str) -> Any:
    """``d[p0][p1]...`` or ``None`` when any step is missing or not a dict."""
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def section(m: Any, key: str) -> dict[str, Any]:
    """``m[key]`` when it is a dict, else ``{}`` (a missing or malformed section reads as empty)."""
    v = dig(m, key)
    return v if isinstance(v, dict) else {}


def num(x: Any) -> float | None:
    """A finite real number as float, else ``None`` (bools, strings, NaN and ∞ are missing)."""
    if isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(float(x)):
        return float(x)
    return None


def ci_pair(x: Any) -> tuple[float, float] | None:
    """A ``[lo, hi]`` confidence interval as a float pair, ``None`` when absent or incomplete."""
    if isinstance(x, (list, tuple)) and len(x) == 2:
        lo, hi = num(x[0]), num(x[1])
        if lo is not None and hi is not None:
            return (lo, hi)
    return None


def fmt(x: Any, nd: int = 3) -> str:
    """``x`` with ``nd`` decimals, or the dash."""
    v = num(x)
    return DASH if v is None else f"{v:.{nd}f}"


def fmt_ppl(x: Any) -> str:
    """A perplexity: two decimals below 100, one above; or the dash."""
    v = num(x)
    return DASH if v is None else f"{v:.2f}" if v < 100 else f"{v:.1f}"


def fmt_ci(ci: Any, nd: int = 3) -> str:
    """`` [lo, hi]`` with a leading space, or ``""`` when there is no interval."""
    c = ci_pair(ci)
    return "" if c is None else f" [{c[0]:.{nd}f}, {c[1]:.{nd}f}]"


def delta_pct(v: Any, base: Any) -> float | None:
    """Relative change of ``v`` vs ``base`` in %, ``None`` when either is missing or base is 0."""
    v, base = num(v), num(base)
    return None if v is None or base is None or base == 0 else (v / base - 1.0) * 100.0


def fmt_pct(d: float | None) -> str:
    """A signed percentage (``+12.3%``), or the dash."""
    return DASH if d is None else f"{d:+.1f}%"


def fmt_text(x: Any) -> str:
    """A config value as text: floats to 3 significant digits, ``None`` as the dash (not escaped)."""
    if x is None:
        return DASH
    return f"{x:.3g}" if isinstance(x, float) else str(x)


def tox(m: dict[str, Any], judge: str, key: str, split: str | None = None) -> Any:
    """``toxicity[judge][key]``, or within ``by_prompt_toxicity[split]`` when ``split`` is given (raw value)."""
    path = ("toxicity", judge, "by_prompt_toxicity", split, key) if split else ("toxicity", judge, key)
    return dig(m, *path)


def ppl_of(m: dict[str, Any]) -> Any:
    """The run's conditional perplexity (raw value)."""
    return dig(m, "fluency", "ppl_conditional")


def cfg(m: dict[str, Any], key: str) -> Any:
    """``config[key]`` of a run (raw value)."""
    return dig(m, "config", key)


def judges_of(runs: dict[str, dict[str, Any]], baseline: str = "none", primary: str | None = None) -> list[str]:
    """All judges, baseline's first, then in order of appearance; ``primary`` (if given) leads."""
    order = [baseline, *runs] if baseline in runs else list(runs)
    out: list[str] = []
    for name in order:
        for j in section(runs[name], "toxicity"):
            if j not in out:
                out.append(str(j))
    if primary is not None:
        if primary not in out:
            raise SaedetoxError(f"Judge {primary!r} is in no run; pick one of: {', '.join(out) or 'none'}.")
        out.remove(primary)
        out.insert(0, primary)
    return out


def capability_mean(m: dict[str, Any]) -> float | None:
    """Mean of the run's numeric capability scores, ``None`` when it has none."""
    vals = [v for v in (num(x) for x in section(m, "capability").values()) if v is not None]
    return sum(vals) / len(vals) if vals else None


# ----------------------------------------------------------------------------- analysis


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


BASELINE_METHODS = ("prompt", "meandiff", "aura", "surgery")


def sae_vs_baselines(runs: dict[str, dict[str, Any]], judge: str, max_ppl: float | None = None) -> dict[str, Any]:
    """The SAE run with the largest relative toxicity-probability cut vs the best baseline run whose
    conditional perplexity is equal or lower (the issue's comparison: better toxicity at no more PPL).

    ``max_ppl`` leaves out SAE runs above that conditional perplexity (e.g. the fluency budget)."""
    sae = [(n, m) for n, m in runs.items() if cfg(m, "method") == "sae"]
    base = [(n, m) for n, m in runs.items() if cfg(m, "method") in BASELINE_METHODS]
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
