"""The report's page model: sections made of blocks (cards, tables, figures), rendered by ``templates/``.

The section builders produce plain data with these constructors; the jinja2 templates turn it into
HTML with autoescaping on, so no data string reaches the page unescaped and no builder writes markup.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from saedetox.report.format import DASH, fmt_pct

Seg = str | dict[str, str]


def b(text: Any) -> dict[str, str]:
    return {"text": str(text), "style": "b"}


def code(text: Any) -> dict[str, str]:
    return {"text": str(text), "style": "code"}


def mark(text: Any) -> dict[str, str]:
    return {"text": str(text), "style": "mark"}


def span(text: Any, cls: str) -> dict[str, str]:
    return {"text": str(text), "style": cls}


def link(text: Any, href: str) -> dict[str, str]:
    return {"text": str(text), "style": "link", "href": href}


BR: dict[str, str] = {"text": "", "style": "br"}


def cell(
    text: Any = "",
    ci: str | None = None,
    cls: str | None = None,
    wrap: bool = False,
    segments: Sequence[Seg] | None = None,
) -> dict[str, Any]:
    """A table cell: ``text`` (or ``segments``), an optional grey second line ``ci`` and span class."""
    return {"text": str(text), "ci": ci, "cls": cls, "wrap": wrap, "segments": list(segments or [])}


def row(cells: Sequence[Any], cls: str = "") -> dict[str, Any]:
    return {"cls": cls, "cells": list(cells)}


def table(head: Sequence[str | Sequence[str]], rows: Sequence[dict[str, Any]], left: int = 1) -> dict[str, Any]:
    """``head``: strings or lists of lines; the first ``left`` columns are left-aligned."""
    heads = [h if isinstance(h, str) else list(h) for h in head]
    return {"kind": "table", "head": heads, "rows": list(rows), "left": left}


def card(*lines: Sequence[Seg] | str, cls: str = "") -> dict[str, Any]:
    """A boxed paragraph; each line is a string or a list of segments."""
    return {"kind": "card", "cls": cls, "lines": [[ln] if isinstance(ln, str) else list(ln) for ln in lines]}


def h3(text: str) -> dict[str, Any]:
    return {"kind": "h3", "text": text}


def legend(*segments: Seg) -> dict[str, Any]:
    return {"kind": "legend", "segments": list(segments)}


def figure(uri: str, alt: str) -> dict[str, Any]:
    return {"kind": "figure", "uri": uri, "alt": alt}


def details(summary: str, text: str) -> dict[str, Any]:
    return {"kind": "details", "summary": summary, "text": text}


@dataclass
class Section:
    """One ``<section>``: anchor id, heading and blocks (a section without blocks is left out)."""

    id: str
    heading: str
    blocks: list[dict[str, Any]] = field(default_factory=list)


def delta_cell(d: float | None) -> dict[str, Any]:
    """A Δ% cell: green when lower (better for toxicity and perplexity), red when higher."""
    cls = None if d is None or abs(d) < 0.05 else "neg" if d < 0 else "pos"
    return cell(fmt_pct(d), cls=cls)


def _f(x: Any, nd: int, sign: bool = False) -> str:
    if x is None or not isinstance(x, (int, float)) or not math.isfinite(x):
        return DASH
    return f"{x:+.{nd}f}" if sign else f"{x:.{nd}f}"


def ci_text(ci: Sequence[Any] | None, nd: int = 3, sign: bool = False) -> str | None:
    """``[lo, hi]``, or ``None`` when the interval is missing."""
    if not ci or ci[0] is None or ci[1] is None:
        return None
    return f"[{_f(ci[0], nd, sign)}, {_f(ci[1], nd, sign)}]"


def band(s: Mapping[str, Any] | None, nd: int = 3, sign: bool = False, prefix: str = "") -> dict[str, Any]:
    """A cell from a bootstrap summary (``est``, ``ci``, ``defined``): the estimate over its CI."""
    if not s or s.get("est") is None:
        return cell(DASH)
    ci = ci_text(s.get("ci"), nd, sign)
    if ci and s.get("defined", 1.0) < 0.995:
        ci += f" ({s['defined']:.0%} of resamples)"
    return cell(prefix + _f(s["est"], nd, sign), ci=ci)


def fmt_p(p: float | None) -> str:
    """A p-value: three decimals, ``<0.001`` below, the dash when undefined."""
    return DASH if p is None else "<0.001" if p < 0.001 else f"{p:.3f}"
