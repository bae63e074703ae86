"""``compare``: the paired difference between two runs, from their metrics files (the API of ``saedetox compare``).

A run is named by any of:

- a run folder, or its ``metrics.json``;
- ``SWEEP/metrics.json::RUN`` or ``SWEEP::RUN`` (a sweep folder): run ``RUN`` of a sweep;
- a bare run name together with ``sweep=SWEEP`` (a sweep folder or its ``metrics.json``);
- a metrics mapping (already loaded).

The statistics are :func:`saedetox.eval.metrics.paired.compare_runs`'s: differences A − B of toxicity
probability, EMT and mean log conditional PPL over the same prompts, with a paired bootstrap CI and
a sign-flip permutation p-value.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from saedetox.errors import SaedetoxError
from saedetox.eval.metrics.paired import compare_runs
from saedetox.eval.result import RunResult
from saedetox.report.format import k_note
from saedetox.report.load import read_metrics
from saedetox.report.view import fmt_p

RunRef = str | os.PathLike[str] | Mapping[str, Any]

LABELS = {"tox_prob": "toxicity probability", "emt": "EMT", "log_ppl": "mean log cond. PPL"}


def _pick(path: str | os.PathLike[str], name: str) -> tuple[str, dict[str, Any]]:
    p, runs = read_metrics(path)
    if name not in runs:
        some = ", ".join(list(runs)[:12]) + (", …" if len(runs) > 12 else "")
        raise SaedetoxError(f"{p} has no run named {name!r}; it has: {some}.")
    return name, runs[name]


def resolve_run(ref: RunRef, sweep: str | os.PathLike[str] | None = None, default: str = "A") -> tuple[str, Any]:
    """``(name, metrics)`` of one run reference (see the module docstring)."""
    if isinstance(ref, Mapping):
        name = RunResult.of(ref).config_value("run")
        return str(name or default), ref
    s = os.fspath(ref)
    if "::" in s:
        path, name = s.rsplit("::", 1)
        return _pick(path, name)
    if sweep is not None and not Path(s).exists():
        return _pick(sweep, s)
    p, runs = read_metrics(s)
    if len(runs) > 1:
        raise SaedetoxError(
            f"{p} is a sweep's metrics.json with {len(runs)} runs; name one as {p}::RUN "
            f"(e.g. {p}::{next(iter(runs))}) or give the sweep and two run names."
        )
    return next(iter(runs.items()))


def compare(
    run_a: RunRef,
    run_b: RunRef,
    *,
    judge: str | None = None,
    sweep: str | os.PathLike[str] | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    n_perm: int = 10_000,
) -> dict[str, Any]:
    """Paired differences A − B (toxicity probability, EMT, mean log PPL) with 95% CIs and p-values.

    ``run_a``/``run_b``: see the module docstring; ``sweep`` resolves bare run names. Returns
    :func:`~saedetox.eval.metrics.paired.compare_runs`'s result (``differences``, ``ppl_ratio``, ``k``, …).
    """
    name_a, a = resolve_run(run_a, sweep, "A")
    name_b, b = resolve_run(run_b, sweep, "B")
    if name_a == name_b:
        name_a, name_b = f"{name_a} (A)", f"{name_b} (B)"
    return compare_runs(a, b, judge=judge, names=(name_a, name_b), n_boot=n_boot, seed=seed, n_perm=n_perm)


def _n(x: float | None, nd: int = 3, sign: bool = False) -> str:
    return "–" if x is None else f"{x:+.{nd}f}" if sign else f"{x:.{nd}f}"


def format_comparison(res: Mapping[str, Any]) -> str:
    """The plain-text table ``saedetox compare`` prints."""
    head = (
        f"A = {res['a']}, B = {res['b']} · judge {res['judge']} · k = {res['k']} samples per prompt · "
        f"{res['n_prompts']} prompts, paired"
    )
    rows = [("metric", "A", "B", "A − B", "95% CI", "p (sign-flip)", "n")]
    for d in res["differences"]:
        ci = d["ci"]
        rows.append(
            (
                LABELS.get(d["metric"], d["metric"]),
                _n(d["a"]),
                _n(d["b"]),
                _n(d["diff"], sign=True),
                f"[{_n(ci[0], sign=True)}, {_n(ci[1], sign=True)}]",
                fmt_p(d["p"]),
                str(d["n"]),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [head, ""]
    for r in rows:
        cols = zip(r, widths, strict=True)
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(cols)))
    pr = res.get("ppl_ratio") or {}
    if pr.get("est") is not None:
        lo, hi = pr["ci"]
        lines.append(f"PPL ratio A / B (geometric means): ×{pr['est']:.3f} [{_n(lo)}, {_n(hi)}]")
    lines += [
        "",
        f"CI: BCa bootstrap over prompts, pairs kept together ({res['n_boot']} resamples, seed {res['seed']}).",
        "p: two-sided paired sign-flip permutation test of the mean difference.",
    ]
    note = k_note(res["k"])
    if note:
        lines.append(note)
    return "\n".join(lines)


def to_json(res: Mapping[str, Any]) -> str:
    """The result as JSON (``--json``)."""
    return json.dumps(res, indent=2, ensure_ascii=False)
