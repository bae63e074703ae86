"""The report's gate block: how well a features.json's gate selects, from each run's metrics.json ``gate``.

A run evaluated with ``gate_features`` (:mod:`saedetox.eval.metrics.gate`) holds, for the gate of
``latents`` selected latents: the AUROC of its margin for a toxic continuation (on the unsteered
run: does the gate open where the model would have written something toxic?), the AUROC of the
open/shut decision, the share of continuations on which it opens, the toxic share among opened
and shut ones, and its false-open rate on held-out clean windows. The HTML section and the
markdown table show the same cells.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from saedetox.eval.result import RunResult
from saedetox.report.format import fmt, fmt_text, num, section
from saedetox.report.view import Section, card, cell, row, table

HEAD: list[list[str]] = [
    ["run"],
    ["gate", "latents"],
    ["samples", "per prompt (k)"],
    ["texts"],
    ["AUROC", "toxic continuation"],
    ["AUROC", "open / shut"],
    ["opens on", "(share of texts)"],
    ["toxic share", "when open"],
    ["toxic share", "when shut"],
    ["clean", "false-open"],
    ["clean windows", "(words)"],
    ["judge"],
]

NOTE = (
    "Gate of the features.json named in each run's gate_features, measured on that run's prompt + continuation "
    "texts (labelled toxic by the judge shown): on the unsteered run, the AUROC is for predicting a toxic "
    "unsteered continuation. AUROC toxic continuation ranks texts by the gate's margin; open / shut is the "
    "AUROC of the decision itself; clean false-open is the share of held-out clean windows it opens on."
)


def gate_runs(runs: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The runs whose metrics.json holds a gate block, with that block."""
    out = {}
    for name, m in runs.items():
        g = section(m, "gate")
        if g and (num(g.get("auroc_toxic")) is not None or num(g.get("open_rate")) is not None):
            out[name] = g
    return out


def gate_cells(name: str, m: Mapping[str, Any], g: Mapping[str, Any]) -> list[str]:
    """One run's cells, in :data:`HEAD`'s order."""
    words = g.get("window_words")
    return [
        name,
        fmt_text(g.get("latents")),
        fmt_text(RunResult.of(m).samples_per_prompt),
        fmt_text(g.get("n_texts")),
        fmt(g.get("auroc_toxic")),
        fmt(g.get("auroc_open")),
        fmt(g.get("open_rate")),
        fmt(g.get("toxic_rate_open")),
        fmt(g.get("toxic_rate_shut")),
        fmt(g.get("clean_false_open")),
        f"{fmt_text(g.get('clean_windows'))} ({fmt_text(words)})",
        fmt_text(g.get("judge")),
    ]


def section_gate(runs: Mapping[str, Mapping[str, Any]]) -> Section:
    """The HTML section (no blocks, so left out, when no run measured a gate)."""
    s = Section("gate", "Gate selectivity")
    found = gate_runs(runs)
    if found:
        rows = [row([cell(c) for c in gate_cells(n, runs[n], g)]) for n, g in found.items()]
        s.blocks += [table(HEAD, rows, left=1), card(NOTE, cls="meta")]
    return s


def gate_markdown(runs: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The markdown table and its note (no lines when no run measured a gate)."""
    found = gate_runs(runs)
    if not found:
        return []
    head = [" ".join(h) for h in HEAD]
    lines = ["", "### Gate selectivity", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(gate_cells(n, runs[n], g)) + " |" for n, g in found.items()]
    return lines + ["", NOTE, ""]
