"""The HTML report page: inline CSS, the sections in order, one self-contained file (no external CSS, JS or fonts)."""

from __future__ import annotations

import json
from typing import Any

from saedetox.report.format import DASH, config_value, fmt_text
from saedetox.report.sections import (
    esc,
    section_agreement,
    section_capability,
    section_headline,
    section_metrics,
    section_tradeoff,
)
from saedetox.report.studies import section_features, section_splitting

CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
main{max-width:1400px;margin:0 auto;padding:18px 28px 60px}
h1{font-size:1.7em;margin:.4em 0 .1em}h2{font-size:1.25em;margin:1.8em 0 .5em;border-bottom:2px solid #dde2ea;
padding-bottom:4px}h3{font-size:1.02em;margin:1.2em 0 .4em}
.meta{color:#5a6475;font-size:.9em}nav a{margin-right:14px;font-size:.9em;color:#2457a6;text-decoration:none}
.card{background:#fff;border:1px solid #dde2ea;border-radius:8px;padding:14px 18px;margin:10px 0}
.headline{font-size:1.08em;line-height:1.6}.big{font-size:1.35em;font-weight:600;color:#1b5e20}
.scroll{overflow-x:auto;background:#fff;border:1px solid #dde2ea;border-radius:8px;width:fit-content;max-width:100%}
table{border-collapse:collapse;font-size:12px}
th,td{padding:4px 7px;border-bottom:1px solid #eceff4;text-align:right;white-space:nowrap;vertical-align:top}
th{background:#eef1f6;position:sticky;top:0;font-weight:600}th.l,td.l{text-align:left}
td.wrap{white-space:normal;min-width:260px;max-width:560px;text-align:left}
tr.pareto td{background:#e8f5e9}tr.base td{background:#fff8e1}
.neg{color:#1b5e20}.pos{color:#b71c1c}.ci{color:#7a8494;font-size:.85em;display:block}
img{max-width:100%;display:block;margin:6px auto}mark{background:#ffe082;padding:0 1px}
code{background:#f0f2f5;padding:0 3px;border-radius:3px}pre{white-space:pre-wrap;font-size:12px;margin:0}
details summary{cursor:pointer;font-weight:600}.legend{font-size:.85em;color:#5a6475;margin:4px 2px}
"""


def render_html(
    runs: dict[str, dict[str, Any]],
    judges: list[str],
    *,
    baseline: str,
    pareto: set[str],
    features: dict[str, Any] | None,
    splitting: dict[str, Any] | None,
    manifest: dict[str, Any] | None,
    title: str,
) -> str:
    """The whole page; sections without data (no capability, no features, …) are left out."""
    sections: list[tuple[str, str, str]] = []  # (anchor, heading, body)
    if judges:
        sections.append(("headline", "Headline", section_headline(runs, judges, baseline)))
        sections.append(("tradeoff", "Toxicity vs fluency", section_tradeoff(runs, judges, baseline)))
    sections.append(("metrics", "All metrics", section_metrics(runs, judges, baseline, pareto)))
    sections.append(("capability", "Capability vs baseline", section_capability(runs, baseline)))
    sections.append(("agreement", "Judge agreement", section_agreement(runs)))
    if features:
        sections.append(("features", "Top toxicity features", section_features(features)))
    if splitting:
        sections.append(("splitting", "Feature splitting across SAE widths", section_splitting(splitting)))
    if manifest:
        body = esc(json.dumps(manifest, indent=2, default=str, ensure_ascii=False))
        details = f'<details class="card"><summary>config, seeds, versions, data</summary><pre>{body}</pre></details>'
        sections.append(("manifest", "Manifest", details))
    sections = [s for s in sections if s[2]]
    first = next(iter(runs.values()))
    meta = (
        f"{len(runs)} runs · baseline <code>{esc(baseline)}</code> · judges: {esc(', '.join(judges)) or DASH}"
        f" · model <code>{esc(fmt_text(config_value(first, 'model')))}</code>"
        f" · {esc(fmt_text(first.get('n_prompts')))} prompts"
        f" × {esc(fmt_text(first.get('samples_per_prompt')))} samples"
    )
    nav = "".join(f'<a href="#{a}">{h}</a>' for a, h, _ in sections)
    body = "".join(f'<section id="{a}"><h2>{h}</h2>{b}</section>' for a, h, b in sections)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>'
        f'<body><main><h1>{esc(title)}</h1><div class="meta">{meta}</div><nav>{nav}</nav>{body}</main></body>'
        "</html>\n"
    )
