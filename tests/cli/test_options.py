"""The steering options are declared once and reach generate, evaluate and export identically."""

from __future__ import annotations

import typer.main

from saedetox.cli.app import app
from saedetox.cli.options import SteeringOptions, build_spec

STEERING_FLAGS = {
    "--sae",
    "--features",
    "--mode",
    "--strength",
    "--tier",
    "--hook",
    "--threshold",
    "--clamp-value",
    "--positions",
    "--spec",
}


def _params(command: str) -> dict[str, tuple]:
    group = typer.main.get_command(app)
    cmd = group.commands[command]
    return {p.opts[0]: (p.name, p.default, p.help) for p in cmd.params if p.opts[0] in STEERING_FLAGS}


def test_three_commands_share_the_steering_options():
    gen = _params("generate")
    assert set(gen) == STEERING_FLAGS
    assert _params("evaluate") == gen and _params("export") == gen
    assert gen["--mode"][1] == "constant" and gen["--threshold"][1] == "auto" and gen["--positions"][1] == "all"


def test_build_spec_without_sae():
    assert build_spec(SteeringOptions(), required=False) is None
