"""The pre-registered comparisons: methods at matched fluency, and steering modes at equal effective push.

**Matched fluency.** At each PPL ratio r of the :class:`~saedetox.report.curves.ComparisonConfig`
(fixed before the runs), each curve's toxicity probability is interpolated linearly between adjacent
levels, in level order, at its first crossing of r (:func:`~saedetox.report.curves.first_crossing`;
a curve that never reaches r is n/a, never extrapolated). A point method (no strength: prompt, aura)
counts at r when its own PPL ratio is ≤ r. The *best baseline* at r is the lowest toxicity among
the baseline curves and points that count at r. The answer is ``primary SAE curve − best baseline``;
every other SAE curve is compared the same way as a secondary comparison.

**Uncertainty.** Paired bootstrap over prompts: each resample recomputes every run's toxicity
probability and PPL ratio, re-interpolates every curve, and re-chooses the best baseline inside the
resample (conservative: the baseline side takes the minimum of noisy values). CIs are BCa
intervals over the resamples where the quantity is defined, the acceleration from the jackknife over
prompts (every run, curve and best baseline recomputed with one prompt left out); p-values as in
:func:`~saedetox.report.curves.summary`. The CI half-width is the difference the design resolves.

**Equal effective push.** Each steering curve's toxicity probability and PPL ratio interpolated at the
configured effective pushes (``steering.effective_push``; the ``none`` run is push 0), with the
difference to the primary curve at the same push.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from saedetox.errors import SaedetoxError
from saedetox.report.curves import (
    ComparisonConfig,
    PromptMatrix,
    build_matrix,
    family_of,
    first_crossing,
    group_curves,
    resampled,
    summary,
)
from saedetox.report.format import num
from saedetox.report.load import as_results


def _band(dist: np.ndarray, n_boot: int) -> dict[str, Any]:
    s = summary(dist, n_boot)
    return {"est": s["est"], "ci": s["ci"]}


def _diff(a: np.ndarray, b: np.ndarray, n_boot: int) -> dict[str, Any]:
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.where(b > 0, (a - b) / b, np.nan)
    return {"diff": summary(a - b, n_boot), "rel": summary(rel, n_boot)}


def matched_fluency(
    runs: Mapping[str, Mapping[str, Any]], cfg: ComparisonConfig, judge: str, origin: str = "none"
) -> dict[str, Any]:
    """The matched-fluency comparison of ``runs`` (see the module docstring) as plain data for the report.

    Raises :class:`SaedetoxError` (one line, shown in the report) when the runs lack what it needs:
    an origin run and per-prompt data.
    """
    mat = build_matrix(runs, judge, origin)
    curves, points, left = group_curves(runs, mat.names, origin)
    left = {**mat.left_out, **left}
    tox, ratio = resampled(mat, cfg.n_boot, cfg.seed)
    o = mat.index(origin)
    sae = [c for c in curves if c.family == "sae"]
    primary = cfg.primary or (sae[0].name if sae else None)
    out: dict[str, Any] = {
        "judge": judge,
        "k": mat.k,
        "n_prompts": mat.n,
        "n_boot": cfg.n_boot,
        "origin": origin,
        "origin_tox": _band(tox[:, o], cfg.n_boot),
        "primary": primary,
        "primary_source": "config" if cfg.primary else "default: the first SAE curve in run order",
        "ratios": list(cfg.ppl_ratios),
        "left_out": left,
        "curves": [],
        "points": [],
        "at_ratio": [],
    }
    cols: dict[str, list[int]] = {}
    for c in curves:
        cols[c.name] = [o, *(mat.index(r) for r in c.runs)]
        pts = [
            {"run": name, "level": lvl, "ratio": _band(ratio[:, i], cfg.n_boot), "tox": _band(tox[:, i], cfg.n_boot)}
            for name, lvl, i in zip([origin, *c.runs], [0.0, *c.levels], cols[c.name], strict=True)
        ]
        out["curves"].append({"name": c.name, "family": c.family, "runs": c.runs, "points": pts})
    for p in points:
        i = mat.index(p)
        fam = family_of(runs[p])
        out["points"].append(
            {"name": p, "family": fam, "ratio": _band(ratio[:, i], cfg.n_boot), "tox": _band(tox[:, i], cfg.n_boot)}
        )
    if primary is not None and primary not in cols:
        out["primary_missing"] = f"the primary curve {primary!r} is not among the curves ({', '.join(cols) or 'none'})"
    elif primary is not None and primary not in {c.name for c in sae}:
        out["primary_missing"] = f"the primary curve {primary!r} is not an SAE curve"
    for r in cfg.ppl_ratios:
        out["at_ratio"].append(_at_ratio(r, out, cols, tox, ratio, mat))
    return out


def _at_ratio(
    r: float, out: dict[str, Any], cols: dict[str, list[int]], tox: np.ndarray, ratio: np.ndarray, mat: PromptMatrix
) -> dict[str, Any]:
    nb = out["n_boot"]
    values: dict[str, np.ndarray] = {}
    entries = []
    for c in out["curves"]:
        v = first_crossing(ratio[:, cols[c["name"]]], tox[:, cols[c["name"]]], r)
        values[c["name"]] = v
        row = ratio[0, cols[c["name"]]]
        reach = float(np.nanmax(row)) if (~np.isnan(row)).any() else float("nan")  # no PPL: unreachable
        entries.append(
            {"name": c["name"], "kind": "curve", "family": c["family"], "value": summary(v, nb), "reaches": reach}
        )
    for p in out["points"]:
        i = mat.index(p["name"])
        v = np.where(ratio[:, i] <= r, tox[:, i], np.nan)
        values[p["name"]] = v
        entries.append(
            {"name": p["name"], "kind": "point", "family": p["family"], "value": summary(v, nb), "reaches": ratio[0, i]}
        )
    base = [e["name"] for e in entries if e["family"] == "baseline"]
    res: dict[str, Any] = {"ratio": r, "entries": entries, "best_baseline": None, "answer": None, "secondary": []}
    if not base:
        res["why"] = "no baseline run in the comparison"
        return res
    stack = np.stack([values[b] for b in base])
    defined = ~np.isnan(stack)
    best = np.where(defined.any(axis=0), np.nanmin(np.where(defined, stack, np.inf), axis=0), np.nan)
    if defined[:, 0].any():
        res["best_baseline"] = base[int(np.nanargmin(np.where(defined[:, 0], stack[:, 0], np.nan)))]
    else:
        res["why"] = f"no baseline reaches PPL ratio {r:g}"
    for c in out["curves"]:
        if c["family"] != "sae":
            continue
        comp = {"name": c["name"], **_diff(values[c["name"]], best, nb)}
        if c["name"] == out["primary"]:
            res["answer"] = comp
        else:
            res["secondary"].append(comp)
    return res


def equal_push(
    runs: Mapping[str, Mapping[str, Any]], cfg: ComparisonConfig, judge: str, origin: str = "none"
) -> dict[str, Any]:
    """Each steering curve's toxicity probability and PPL ratio at the configured effective pushes.

    A curve counts when every run on it recorded ``steering.effective_push``; the reference for the
    differences is the primary curve when it has pushes, else the first such curve.
    """
    mat = build_matrix(runs, judge, origin)
    curves, _, _ = group_curves(runs, mat.names, origin)
    tox, ratio = resampled(mat, cfg.n_boot, cfg.seed)
    o = mat.index(origin)
    results = as_results(runs)
    pushed = []
    for c in curves:
        xs = [num(results[r].effective_push) for r in c.runs]
        if all(x is not None for x in xs):
            order = sorted(range(len(xs)), key=lambda i: c.levels[i])
            pushed.append((c, [0.0, *(float(xs[i]) for i in order)], [o, *(mat.index(c.runs[i]) for i in order)]))
    if not pushed:
        raise SaedetoxError("No curve recorded its effective push (steering.effective_push).")
    names = [c.name for c, _, _ in pushed]
    ref = cfg.primary if cfg.primary in names else names[0]
    interp: dict[tuple[str, float], tuple[np.ndarray, np.ndarray]] = {}
    for c, xs, ii in pushed:
        x = np.broadcast_to(np.array(xs), (tox.shape[0], len(xs)))
        for p in cfg.pushes:
            interp[(c.name, p)] = (first_crossing(x, tox[:, ii], p), first_crossing(x, ratio[:, ii], p))
    rows = []
    for c, xs, _ in pushed:
        at = []
        for p in cfg.pushes:
            t, q = interp[(c.name, p)]
            d = None if c.name == ref else summary(t - interp[(ref, p)][0], cfg.n_boot)
            at.append({"push": p, "tox": summary(t, cfg.n_boot), "ratio": summary(q, cfg.n_boot), "d_tox": d})
        rows.append({"curve": c.name, "max_push": max(xs), "at": at})
    return {"judge": judge, "k": mat.k, "n_prompts": mat.n, "reference": ref, "pushes": list(cfg.pushes), "rows": rows}
