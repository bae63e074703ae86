"""``saedetox report``: tables and plots from metrics files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def report_cmd(
    runs: Annotated[list[str], typer.Argument(help="metrics.json files (per run or per sweep).")],
    out: Annotated[str, typer.Option("--out", help="Output HTML file.")] = "report.html",
    baseline: Annotated[str, typer.Option("--baseline", help="Run to compare against.")] = "none",
) -> None:
    """Tables and plots (self-contained HTML + markdown) from one or more metrics.json files."""
    from saedetox.io import atomic_write_text  # deferred: see saedetox.cli.app
    from saedetox.report.load import load_comparison_config, load_runs
    from saedetox.report.markdown import markdown_summary
    from saedetox.report.write import write_report

    results = load_runs([Path(r) for r in runs])
    comparison = load_comparison_config(runs)  # a sweep's pre-registered comparison, from its manifest.json
    write_report(results, out, baseline=baseline, comparison=comparison)
    md = Path(out).with_suffix(".md")
    atomic_write_text(md, markdown_summary(results, baseline=baseline, comparison=comparison))
    typer.echo(f"wrote {out} and {md}")
