"""Help that teaches: every command shows an example, choices as choices, no raw Python types."""

from __future__ import annotations

import re

import pytest
import typer.main

from helpers import run_cli
from saedetox.cli.app import app
from saedetox.methods.registry import exportable_methods, get_method, method_names

COMMANDS = sorted(typer.main.get_command(app).commands)


def _help(argv: list[str], capsys, monkeypatch) -> str:
    monkeypatch.setenv("COLUMNS", "240")  # one option per line: nothing wrapped mid-word
    code, out, err = run_cli([*argv, "--help"], capsys)
    assert code == 0, err
    return out


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_help_has_an_example_and_no_python_types(command, capsys, monkeypatch):
    out = _help([command], capsys, monkeypatch)
    assert re.search(rf"Example: saedetox {command}\b", out), out
    assert "<list[" not in out and "<bool>" not in out, out


def test_the_root_help_shows_no_python_types(capsys, monkeypatch):
    out = _help([], capsys, monkeypatch)
    assert "<bool>" not in out and all(c in out for c in COMMANDS)


def _choices(out: str, flag: str) -> list[str]:
    line = next(line for line in out.splitlines() if re.search(rf"\s{flag}\s", line))
    return re.search(r"<([\w|-]+)>", line).group(1).split("|")


def test_choices_are_shown_as_choices(capsys, monkeypatch):
    evaluate = _help(["evaluate"], capsys, monkeypatch)
    assert _choices(evaluate, "--method") == list(method_names())
    assert _choices(evaluate, "--mode") == ["constant", "conditional", "token", "clamp", "adaptive"]
    assert _choices(evaluate, "--positions") == ["all", "generated"]
    assert "[default: 25]" in next(line for line in evaluate.splitlines() if "--samples" in line)


def test_export_help_lists_only_what_it_can_fold(capsys, monkeypatch):
    out = _help(["export"], capsys, monkeypatch)
    methods = _choices(out, "--method")
    assert methods == list(exportable_methods()) and "aura" not in methods and "prompt" not in methods
    assert all(get_method(m).export is not None for m in methods)
    assert _choices(out, "--mode") == ["constant"]  # gated and adaptive steering cannot be folded into weights
