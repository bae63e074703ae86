"""Report figures, rendered off-screen with matplotlib's Agg canvas and returned as PNG data URIs.

Every function takes plain, already-extracted data (no metrics dicts) so the report module decides
what is shown and this module only decides how. No pyplot: figures are built on ``Figure`` with an
explicit ``FigureCanvasAgg``, so the global matplotlib backend is never touched.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Annotation, Text
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
from matplotlib.transforms import Bbox

#: colour and marker per steering method; unknown methods cycle through ``_EXTRA``.
METHOD_STYLE: dict[str, tuple[str, str]] = {
    "none": ("#222222", "*"),
    "sae": ("#1f77b4", "o"),
    "prompt": ("#9467bd", "P"),
    "meandiff": ("#ff7f0e", "s"),
    "aura": ("#2ca02c", "D"),
    "surgery": ("#d62728", "^"),
}
_EXTRA = [("#8c564b", "v"), ("#e377c2", "<"), ("#7f7f7f", ">"), ("#bcbd22", "h"), ("#17becf", "X")]


@dataclass
class Point:
    """One run in a trade-off panel: x = conditional perplexity, y = toxicity probability."""

    name: str
    method: str
    x: float
    y: float
    x_ci: tuple[float, float] | None = None
    y_ci: tuple[float, float] | None = None


def plain(text: str) -> str:
    """Make a data string safe for matplotlib text (no mathtext from stray ``$``)."""
    return str(text).replace("$", r"\$")


def method_style(method: str) -> tuple[str, str]:
    """Colour and marker for a method name (stable for unknown names)."""
    if method in METHOD_STYLE:
        return METHOD_STYLE[method]
    return _EXTRA[sum(map(ord, method)) % len(_EXTRA)]


def to_data_uri(fig: Figure, dpi: int = 110) -> str:
    """Render ``fig`` to a ``data:image/png;base64,...`` URI."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _err(value: float, ci: tuple[float, float] | None) -> tuple[float, float]:
    if ci is None:
        return (0.0, 0.0)
    return (max(0.0, value - ci[0]), max(0.0, ci[1] - value))


_NEAR = [(6, 4), (6, -11), (-6, 4), (-6, -11), (6, 14), (-6, 14), (6, -21), (-6, -21), (12, -3), (-12, -3)]
_FAR = [
    (dx * k, dy * k) for k in (2.2, 3.4) for dx, dy in ((10, 10), (10, -14), (-10, 10), (-10, -14), (0, 16), (0, -20))
]


def _place_labels(fig: Figure, ax: Axes, points: Sequence[Point], fontsize: float) -> None:
    """Greedy label placement: try offsets around each point (near first, then with a leader line).

    The cost of a spot is the number of already placed labels and markers it overlaps, plus a
    penalty when it leaves the axes; the first spot with cost 0 wins, else the cheapest.
    """
    renderer = fig.canvas.get_renderer()
    taken: list[Bbox] = []
    for p in points:
        px, py = ax.transData.transform((p.x, p.y))
        taken.append(Bbox.from_bounds(px - 5, py - 5, 10, 10))
    axbox = ax.get_window_extent(renderer)
    for p in points:
        best: tuple[Annotation, Bbox] | None = None
        best_cost = math.inf
        for dx, dy in _NEAR + _FAR:
            far = (dx, dy) not in _NEAR
            t = ax.annotate(
                plain(p.name),
                (p.x, p.y),
                xytext=(dx, dy),
                textcoords="offset points",
                fontsize=fontsize,
                ha="left" if dx > 0 else "right" if dx < 0 else "center",
                va="bottom" if dy > 0 else "top" if far else "bottom",
                color="#333333",
                arrowprops={"arrowstyle": "-", "color": "#9a9a9a", "lw": 0.6, "shrinkA": 0, "shrinkB": 4}
                if far
                else None,
            )
            t.update_positions(renderer)  # place the offset text before measuring it
            bb = Text.get_window_extent(t, renderer)  # the text alone, not its leader line
            inside = axbox.contains(bb.x0, bb.y0) and axbox.contains(bb.x1, bb.y1)
            cost = sum(bb.overlaps(o) for o in taken) + (0 if inside else 3) + (0.25 if far else 0)
            if cost < best_cost:
                if best is not None:
                    best[0].remove()
                best, best_cost = (t, bb), cost
            else:
                t.remove()
            if cost < 1:
                break
        if best is not None:
            taken.append(best[1])


def _log_x_if_wide(ax: Axes, xs: Sequence[float]) -> None:
    """Log-scale the x axis (with plain-number ticks) when the values span more than 2.5×."""
    lo, hi = min(xs), max(xs)
    if lo > 0 and hi / lo > 2.5:
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())


def tradeoff_plot(
    panels: Sequence[tuple[str, Sequence[Point], Sequence[int]]],
    baseline: str | None = None,
    small: bool = False,
    ylabel: str = "toxicity probability (lower = safer)",
    xlabel: str = "conditional perplexity (lower = more fluent)",
) -> str:
    """Toxicity probability vs a perplexity measure: one panel per ``(judge, points, pareto_indices)``.

    One panel is drawn large; ``small`` draws a grid of up to three small panels per row. The run
    named ``baseline`` gets a large outlined marker and guide lines. ``ylabel`` states k.
    """
    n = len(panels)
    cols = min(n, 3) if small else 1
    rows = math.ceil(n / cols)
    pw = {1: 8.0, 2: 6.4}.get(cols, 4.6)
    w, h = (pw * cols, pw * 0.78 * rows) if small else (12.0, 6.2)
    fig = Figure(figsize=(w, h), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    handles: dict[str, Artist] = {}
    for ax, (judge, points, front) in zip(axes, panels, strict=False):
        groups: dict[tuple[str, bool], list[Point]] = {}
        for p in points:  # one errorbar and one scatter call per method (and for the baseline): far fewer artists
            groups.setdefault((p.method, p.name == baseline), []).append(p)
        for (method, is_base), pts in groups.items():
            colour, marker = method_style(method)
            xe = [_err(p.x, p.x_ci) for p in pts]
            ye = [_err(p.y, p.y_ci) for p in pts]
            ax.errorbar(
                [p.x for p in pts],
                [p.y for p in pts],
                xerr=[[e[0] for e in xe], [e[1] for e in xe]],
                yerr=[[e[0] for e in ye], [e[1] for e in ye]],
                fmt="none",
                ecolor=colour,
                alpha=0.35,
                elinewidth=1,
                capsize=2,
            )
            handles[method] = ax.scatter(
                [p.x for p in pts],
                [p.y for p in pts],
                c=colour,
                marker=marker,
                s=(110 if small else 190) if is_base else (35 if small else 60),
                edgecolors="black" if is_base else "white",
                linewidths=0.8,
                zorder=3,
                label=plain(method),
            )
            if is_base:
                ax.axhline(pts[0].y, color="#888888", lw=0.8, ls=":", zorder=1)
                ax.axvline(pts[0].x, color="#888888", lw=0.8, ls=":", zorder=1)
        fr = sorted((points[i] for i in front), key=lambda p: p.x)
        if len(fr) > 1:
            ax.plot([p.x for p in fr], [p.y for p in fr], color="#2e7d32", lw=1.4, ls="--", zorder=2, alpha=0.8)
        handles["Pareto front"] = ax.plot([], [], color="#2e7d32", lw=1.4, ls="--", label="Pareto front")[0]
        _log_x_if_wide(ax, [p.x for p in points])
        ax.set_title(f"judge: {plain(judge)}", fontsize=9 if small else 11)
        ax.set_xlabel(plain(xlabel), fontsize=8 if small else 10)
        ax.set_ylabel(plain(ylabel), fontsize=8 if small else 10)
        ax.tick_params(labelsize=7 if small else 9)
        ax.grid(alpha=0.25, which="both")
        ax.margins(0.08)
        fig.canvas.draw()
        _place_labels(fig, ax, points, fontsize=6.5 if small else 8)
    fig.legend(
        list(handles.values()),
        list(handles.keys()),
        loc="outside lower center",
        ncols=min(len(handles), 7),
        fontsize=8 if small else 9,
        frameon=False,
    )
    return to_data_uri(fig)


def capability_plot(
    tasks: Sequence[str], runs: Sequence[str], deltas: Sequence[Sequence[float | None]], unit: str
) -> str:
    """Grouped bars of capability change vs baseline: ``deltas[r][t]`` for run ``r`` and task ``t``."""
    width = max(6.0, min(16.0, 1.0 + 0.55 * len(runs) * max(1, len(tasks)) ** 0.5))
    fig = Figure(figsize=(width, 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    bw = 0.8 / max(1, len(tasks))
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
    for t, task in enumerate(tasks):
        xs = [r + (t - (len(tasks) - 1) / 2) * bw for r in range(len(runs))]
        ys = [d[t] if d[t] is not None else 0.0 for d in deltas]
        ax.bar(xs, ys, width=bw, color=palette[t % len(palette)], label=plain(task))
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(range(len(runs)), [plain(r) for r in runs], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(f"Δ vs baseline ({unit})")
    ax.grid(axis="y", alpha=0.25)
    ax.legend(fontsize=8, frameon=False, ncols=min(len(tasks), 4))
    return to_data_uri(fig)


def splitting_plot(
    series: dict[str, list[tuple[int, float | None, float | None, float | None]]], k_text: str = ""
) -> str:
    """Feature splitting: per series ``(width, relative toxicity cut, PPL ratio, latents for coverage)``."""
    fig = Figure(figsize=(13.0, 3.9), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3)
    titles = [f"toxicity cut vs none ({k_text})" if k_text else "toxicity cut vs none", "fluency cost"]
    titles.append("latents to cover the toxic direction")
    ylabels = ["relative cut in toxicity probability (%)", "PPL ratio (steered / none)", "latents needed"]
    widths = sorted({w for rows in series.values() for w, *_ in rows})
    for k, ax in enumerate(axes):
        # latents-for-coverage depends on the SAE only, not on the steering setting: one line
        groups = series if k < 2 else {"": [r for rows in series.values() for r in rows]}
        for label, rows in groups.items():
            pts = sorted({w: v[k] for w, *v in rows if v[k] is not None}.items())
            if pts:
                ys = [y * 100 if k == 0 else y for _, y in pts]
                ax.plot([w for w, _ in pts], ys, marker="o", label=plain(label), color=None if k < 2 else "#555555")
        ax.set_xscale("log", base=2)
        ax.set_xticks(widths, [str(w) for w in widths], fontsize=8)
        ax.minorticks_off()
        ax.set_xlabel("SAE width (latents, log₂ scale)")
        ax.set_ylabel(ylabels[k], fontsize=9)
        ax.set_title(titles[k], fontsize=10)
        ax.grid(alpha=0.25)
    axes[1].axhline(1.0, color="#888888", lw=0.8, ls=":")
    axes[0].axhline(0.0, color="#888888", lw=0.8, ls=":")
    if len(series) > 1:
        axes[0].legend(fontsize=8, frameon=False)
    return to_data_uri(fig)
