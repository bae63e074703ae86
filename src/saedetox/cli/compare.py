"""``saedetox compare RUN_A RUN_B``: the paired difference between two runs, with 95% CIs and p-values."""

from __future__ import annotations

from typing import Annotated

import typer

RUN_HELP = "A run folder or its metrics.json, SWEEP/metrics.json::RUN (or SWEEP::RUN), or a run name with --sweep."


def compare_cmd(
    run_a: Annotated[str, typer.Argument(metavar="RUN_A", help=RUN_HELP)],
    run_b: Annotated[str, typer.Argument(metavar="RUN_B", help=RUN_HELP)],
    sweep: Annotated[
        str | None, typer.Option("--sweep", help="A sweep folder or its metrics.json; RUN_A and RUN_B name its runs.")
    ] = None,
    judge: Annotated[str | None, typer.Option("--judge", help="Judge (default: the first both runs have).")] = None,
    n_boot: Annotated[int, typer.Option("--n-boot", min=100, help="Bootstrap resamples over prompts.")] = 2000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap and the permutation test.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Paired A − B differences (toxicity probability, EMT, mean log cond. PPL) over the same prompts.

    95% CI: BCa bootstrap over prompts with the pairs kept together; p: two-sided paired
    sign-flip permutation test. Both runs must have scored the same prompts with the same k.

    Example: saedetox compare runs/none runs/sae
    """
    from saedetox.report.compare import compare, format_comparison, to_json  # deferred: see saedetox.cli.app

    res = compare(run_a, run_b, judge=judge, sweep=sweep, n_boot=n_boot, seed=seed)
    typer.echo(to_json(res) if as_json else format_comparison(res))
