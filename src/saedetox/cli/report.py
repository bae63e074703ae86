"""``saedetox report``: tables and plots from metrics files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from saedetox.errors import SaedetoxError


def report_cmd(
    runs: Annotated[list[str], typer.Argument(help="metrics.json files (per run or per sweep).")],
    out: Annotated[str, typer.Option("--out", help="Output HTML file.")] = "report.html",
    baseline: Annotated[
        str | None, typer.Option("--baseline", help="Run to compare against (default: the 'none' run, if any).")
    ] = None,
) -> None:
    """Tables and plots (self-contained HTML + markdown) from one or more metrics.json files.

    Example: saedetox report sweep_out/metrics.json --out report.html
    """
    from saedetox.io import atomic_write_text, check_output_file  # deferred: see saedetox.cli.app
    from saedetox.report.load import load_comparison_config, load_runs, load_studies
    from saedetox.report.markdown import markdown_summary
    from saedetox.report.study_sections import studies_markdown
    from saedetox.report.write import write_report

    check_output_file(out)
    check_output_file(Path(out).with_suffix(".md"))
    results = load_runs([Path(r) for r in runs])
    if baseline is not None and baseline not in results:
        raise SaedetoxError(f"No run named '{baseline}' to compare against; the runs are: {', '.join(results)}.")
    baseline = baseline or "none"
    comparison = load_comparison_config(runs)  # a sweep's pre-registered comparison, from its manifest.json
    studies = load_studies(runs)  # a sweep's robustness.json and secondary.json, beside its metrics.json
    write_report(results, out, baseline=baseline, comparison=comparison, **studies)
    md = Path(out).with_suffix(".md")
    summary = markdown_summary(results, baseline=baseline, comparison=comparison)
    atomic_write_text(md, summary.rstrip("\n") + "\n" + studies_markdown(**studies))
    typer.echo(f"wrote {out} and {md}")
