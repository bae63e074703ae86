"""``saedetox demo``: the whole pipeline on the committed reference world."""

from __future__ import annotations

from typing import Annotated

import typer


def demo_cmd(
    out: Annotated[str, typer.Option("--out", help="Output folder (resumable).")] = "demo_out",
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace runs in OUT that were made with other settings.")
    ] = False,
) -> None:
    """The whole pipeline on the committed reference world, offline.

    Example: saedetox demo --out demo_out
    """
    from saedetox.experiments.demo import run_demo  # deferred: see saedetox.cli.app

    run_demo(out, overwrite=overwrite)
