"""``saedetox sweep`` and ``saedetox splitting``: many runs from one YAML, and the feature-splitting study."""

from __future__ import annotations

import json
from dataclasses import replace
from importlib.resources import files
from pathlib import Path
from typing import Annotated

import typer
import yaml

from saedetox.cli.fields import Choices
from saedetox.errors import SaedetoxError
from saedetox.eval.sampler.backends import backend_names


def sweep_cmd(
    config: Annotated[str, typer.Argument(help="Sweep YAML (see src/saedetox/configs/).")],
    out: Annotated[str | None, typer.Option("--out", help="Output folder (resumable).")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Run every check a real run makes first, offline; run nothing.")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace runs in OUT that were made with other settings.")
    ] = False,
    backend: Annotated[
        str | None,
        typer.Option("--backend", help="Override the config's evaluation backend (hf or vllm)."),
        Choices(backend_names),
    ] = None,
    data_parallel: Annotated[
        int | None,
        typer.Option("--data-parallel", metavar="<int>", help="Override the config's vLLM data parallelism."),
    ] = None,
    reuse_discovery: Annotated[
        str | None,
        typer.Option(
            "--reuse-discovery",
            metavar="DIR",
            help="Another sweep's folder: copy its features.json when discovered with the same model, SAE, "
            "hook and settings (otherwise discovery runs).",
        ),
    ] = None,
) -> None:
    """Run many evaluate runs from one YAML (resumable); write metrics.json and report.html.

    Example: saedetox sweep src/saedetox/configs/demo.yaml --out sweep_out --backend vllm --data-parallel 4
    """
    from saedetox.experiments.config import load_config  # deferred: see saedetox.cli.app
    from saedetox.experiments.sweep import dry_run as check
    from saedetox.experiments.sweep import run_sweep

    cfg = load_config(config)
    overrides = {k: v for k, v in {"backend": backend, "data_parallel": data_parallel}.items() if v is not None}
    if overrides:
        cfg = replace(cfg, evaluation=replace(cfg.evaluation, **overrides).validate())
    if dry_run:
        for line in check(cfg, out):
            typer.echo(line)
        typer.echo("dry run OK")
        return
    if out is None:
        raise SaedetoxError("Give --out DIR (or --dry-run).")
    source = yaml.safe_load(Path(config).read_text(encoding="utf-8"))
    if overrides:  # the manifest records what ran
        source = {**source, "evaluation": {**(source.get("evaluation") or {}), **overrides}}
    run_sweep(cfg, out, config_source=source, overwrite=overwrite or cfg.overwrite, reuse_discovery=reuse_discovery)
    typer.echo(f"wrote {Path(out) / 'metrics.json'} and {Path(out) / 'report.html'}")


def splitting_cmd(
    out: Annotated[str, typer.Option("--out", help="Output folder (resumable).")] = "splitting_out",
    config: Annotated[str | None, typer.Option("--config", help="Sweep YAML with a splitting section.")] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace runs in OUT that were made with other settings.")
    ] = False,
) -> None:
    """The feature-splitting study (default: the reference world's committed SAE widths).

    Example: saedetox splitting --out splitting_out
    """
    from saedetox.experiments.config import load_config  # deferred: see saedetox.cli.app
    from saedetox.experiments.sweep import run_sweep

    path = config or str(files("saedetox") / "configs" / "splitting.yaml")
    cfg = load_config(path)
    if cfg.splitting is None or not cfg.splitting.saes:
        raise SaedetoxError(f"{path} has no splitting section with SAEs.")
    run_sweep(cfg, out, overwrite=overwrite or cfg.overwrite)
    study = json.loads((Path(out) / "splitting.json").read_text())
    typer.echo(study["conclusion"])
