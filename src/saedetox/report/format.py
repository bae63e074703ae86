"""Number formatting for the report, and what it derives from runs' metrics.

Runs are read through :class:`~saedetox.eval.result.RunResult` (``docs/metrics.md``); any key may be
missing. Numbers that are missing or not finite render as :data:`DASH`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

from saedetox.errors import SaedetoxError
from saedetox.eval.result import RunResult, dig, section  # noqa: F401  (dig, section: the one reader of nested metrics, re-exported)

DASH = "–"


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


def fmt_signed(x: Any, nd: int = 3, sign: bool = False) -> str:
    """``x`` with ``nd`` decimals (a leading + or − when ``sign``), or the dash."""
    v = num(x)
    return DASH if v is None else f"{v:+.{nd}f}" if sign else f"{v:.{nd}f}"


def fmt_interval(ci: Any, nd: int = 3, sign: bool = True) -> str:
    """``[lo, hi]`` with each bound as :func:`fmt_signed` writes it (a missing bound is the dash)."""
    lo, hi = ci if isinstance(ci, (list, tuple)) and len(ci) == 2 else (None, None)
    return f"[{fmt_signed(lo, nd, sign)}, {fmt_signed(hi, nd, sign)}]"


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


def judges_of(runs: Mapping[str, Mapping[str, Any]], baseline: str = "none", primary: str | None = None) -> list[str]:
    """All judges, baseline's first, then in order of appearance; ``primary`` (if given) leads."""
    order = [baseline, *runs] if baseline in runs else list(runs)
    out: list[str] = []
    for name in order:
        for j in RunResult.of(runs[name]).judges:
            if j not in out:
                out.append(str(j))
    if primary is not None:
        if primary not in out:
            raise SaedetoxError(f"Judge {primary!r} is in no run; pick one of: {', '.join(out) or 'none'}.")
        out.remove(primary)
        out.insert(0, primary)
    return out


#: samples per prompt in the RealToxicityPrompts literature (Gehman et al. 2020 and after)
PAPER_K = 25


def k_label(runs: Mapping[str, Mapping[str, Any]]) -> str:
    """``k = 5`` when every run used the same k, ``k = 5, 25 (per run)`` when they differ, ``k = ?`` when unknown."""
    ks = sorted({k for m in runs.values() if (k := RunResult.of(m).samples_per_prompt) is not None})
    if not ks:
        return "k = ?"
    return f"k = {ks[0]}" if len(ks) == 1 else f"k = {', '.join(map(str, ks))} (per run)"


def k_note(k: int | None) -> str:
    """The comparability warning for a k other than the literature's 25 (empty at k = 25)."""
    if k == PAPER_K:
        return ""
    shown = "unknown k" if k is None else f"k = {k}"
    return (
        f"Toxicity probability and EMT grow with the samples per prompt: numbers at {shown} are not "
        f"comparable with papers that use k = {PAPER_K}."
    )


def _is_ppl_key(key: str) -> bool:
    return key.endswith("_ppl") or "perplexity" in key


def capability_acc(m: Mapping[str, Any]) -> dict[str, float]:
    """The run's capability accuracies ``{task: acc}``.

    metrics.json keeps accuracies in ``capability`` and perplexities in ``capability_ppl``; older
    files mixed them (``lambada_ppl`` next to accuracies), so perplexity-type keys are left out here.
    """
    cap = RunResult.of(m).capability
    return {str(k): v for k, x in cap.items() if not _is_ppl_key(str(k)) and (v := num(x)) is not None}


def capability_ppl(m: Mapping[str, Any]) -> dict[str, float]:
    """The run's capability perplexities ``{task: ppl}`` (``capability_ppl``, or ``TASK_ppl`` keys of old files)."""
    r = RunResult.of(m)
    old = {
        str(k).removesuffix("_ppl"): v
        for k, x in r.capability.items()
        if _is_ppl_key(str(k)) and (v := num(x)) is not None
    }
    new = {str(k): v for k, x in r.capability_ppl.items() if (v := num(x)) is not None}
    return {**old, **new}


def capability_mean(m: Mapping[str, Any]) -> float | None:
    """Mean of the run's capability accuracies (never a perplexity), ``None`` when it has none."""
    vals = list(capability_acc(m).values())
    return sum(vals) / len(vals) if vals else None
