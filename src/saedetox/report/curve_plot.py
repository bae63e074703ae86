"""The strength-curve figure: toxicity probability vs PPL ratio to ``none``, one line per curve, with paired CIs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from saedetox.report.plots import plain, to_data_uri

_SAE = ["#1f77b4", "#17becf", "#9467bd", "#2ca02c", "#0b3d91", "#6baed6"]
_BASE = ["#ff7f0e", "#d62728", "#8c564b", "#e377c2", "#bcbd22", "#7f7f7f"]


def _xy(p: Mapping[str, Any]) -> tuple[float, float, list[float], list[float]] | None:
    """``(x, y, xerr, yerr)`` of a point's ratio and toxicity bands, ``None`` when undefined."""
    x, y = p["ratio"]["est"], p["tox"]["est"]
    if x is None or y is None:
        return None
    xlo, xhi = (v if v is not None else x for v in p["ratio"]["ci"])
    ylo, yhi = (v if v is not None else y for v in p["tox"]["ci"])
    return x, y, [max(0.0, x - xlo), max(0.0, xhi - x)], [max(0.0, y - ylo), max(0.0, yhi - y)]


def curves_plot(
    curves: Sequence[Mapping[str, Any]],
    points: Sequence[Mapping[str, Any]],
    ratios: Sequence[float],
    primary: str | None,
    ylabel: str,
) -> str:
    """Each curve (``points`` from the origin in level order) as a line; point methods as markers.

    Error bars are the paired bootstrap 95% CIs of each run's toxicity probability and PPL ratio;
    dotted vertical lines mark the pre-registered PPL ratios; the primary curve is drawn thicker.
    """
    fig = Figure(figsize=(11.0, 6.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    n_sae = n_base = 0
    for c in curves:
        if c["family"] == "sae":
            colour, ls = _SAE[n_sae % len(_SAE)], "-"
            n_sae += 1
        else:
            colour, ls = _BASE[n_base % len(_BASE)], "--"
            n_base += 1
        pts = [q for q in map(_xy, c["points"]) if q is not None]
        if not pts:
            continue
        lw = 2.6 if c["name"] == primary else 1.4
        label = plain(c["name"]) + (" (primary)" if c["name"] == primary else "")
        ax.plot([q[0] for q in pts], [q[1] for q in pts], ls=ls, lw=lw, marker="o", ms=4, color=colour, label=label)
        for x, y, xe, ye in pts[1:]:
            err = {"xerr": [[xe[0]], [xe[1]]], "yerr": [[ye[0]], [ye[1]]]}
            ax.errorbar([x], [y], **err, fmt="none", ecolor=colour, alpha=0.35)
    for i, p in enumerate(points):
        q = _xy(p)
        if q is None:
            continue
        colour = _BASE[(n_base + i) % len(_BASE)] if p["family"] == "baseline" else "#555555"
        x, y, xe, ye = q
        ax.errorbar([x], [y], xerr=[[xe[0]], [xe[1]]], yerr=[[ye[0]], [ye[1]]], fmt="D", color=colour, ms=7)
        ax.annotate(plain(p["name"]), (x, y), xytext=(6, 4), textcoords="offset points", fontsize=8)
    if curves and curves[0]["points"]:
        o = curves[0]["points"][0]
        if o["tox"]["est"] is not None:
            ax.scatter([1.0], [o["tox"]["est"]], marker="*", s=220, c="#222222", zorder=4, label=plain(o["run"]))
    for r in ratios:
        ax.axvline(r, color="#888888", lw=0.9, ls=":", zorder=1)
        ax.text(r, 0.995, f" ×{r:g}", transform=ax.get_xaxis_transform(), fontsize=8, va="top", color="#555555")
    ax.set_xlabel("PPL ratio to none (geometric mean of per-prompt conditional PPL; lower = more fluent)")
    ax.set_ylabel(plain(ylabel))
    ax.grid(alpha=0.25)
    ax.legend(fontsize=8, frameon=False, loc="best")
    return to_data_uri(fig)
