"""The HTML report page: the sections in order, rendered by the jinja2 templates in ``templates/``.

One self-contained file: inline CSS, figures as base64 PNG data URIs, no external CSS, JS or
fonts. Autoescaping is on for every template, so each data string is escaped.
"""

from __future__ import annotations

import json
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from saedetox.eval.result import RunResult
from saedetox.report.analysis import Analysis
from saedetox.report.answer import section_answer, section_curves, section_push
from saedetox.report.format import DASH, fmt_text, k_label
from saedetox.report.gate import section_gate
from saedetox.report.sections import (
    section_agreement,
    section_capability,
    section_metrics,
    section_paired,
    section_tradeoff,
)
from saedetox.report.studies import section_features, section_splitting
from saedetox.report.view import Section, code, details

ENV = Environment(
    loader=PackageLoader("saedetox.report", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)


def render_html(
    runs: dict[str, RunResult],
    judges: list[str],
    *,
    baseline: str,
    pareto: set[str],
    analysis: Analysis,
    features: dict[str, Any] | None,
    splitting: dict[str, Any] | None,
    manifest: dict[str, Any] | None,
    title: str,
    studies: list[Section] | None = None,
) -> str:
    """The whole page; sections without data (no capability, no features, …) are left out.

    ``studies``: a sweep's condition studies (secondary question, robustness), after the answer.
    """
    kl = k_label(runs)
    sections = [section_answer(analysis, kl), *(studies or [])]
    if judges:
        sections += [section_curves(analysis), section_push(analysis, kl), section_tradeoff(runs, judges, analysis, kl)]
    sections += [
        section_metrics(runs, judges, analysis, pareto, kl),
        section_paired(analysis, kl),
        section_capability(runs, baseline),
        section_agreement(runs),
        section_gate(runs),
    ]
    if features:
        sections.append(section_features(features))
    if splitting:
        sections.append(section_splitting(splitting, kl))
    if manifest:
        text = json.dumps(manifest, indent=2, default=str, ensure_ascii=False)
        sections.append(Section("manifest", "Manifest", [details("config, seeds, versions, data", text)]))
    first = next(iter(runs.values()))
    meta = [
        f"{len(runs)} runs · baseline ",
        code(baseline),
        f" · judges: {', '.join(judges) or DASH} · model ",
        code(fmt_text(first.config_value("model"))),
        f" · {fmt_text(first.get('n_prompts'))} prompts × {kl} samples",
    ]
    return ENV.get_template("report.html.j2").render(title=title, meta=meta, sections=[s for s in sections if s.blocks])
