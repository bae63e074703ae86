"""examples/quickstart.py runs offline on the reference world, in at most 8 lines of API use."""

from __future__ import annotations

import ast
import re
import runpy
from pathlib import Path

import pytest

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart.py"


def code_lines(path: Path) -> list[str]:
    """Statements' source lines: no docstring, comments or blank lines."""
    tree = ast.parse(path.read_text())
    body = tree.body[1:] if isinstance(tree.body[0], ast.Expr) else tree.body
    lines = path.read_text().splitlines()
    out = []
    for node in body:
        for n in range(node.lineno, node.end_lineno + 1):
            text = lines[n - 1].split("#")[0].strip()
            if text:
                out.append(text)
    return out


def test_quickstart_is_short():
    assert len(code_lines(QUICKSTART)) <= 8


@pytest.mark.slow
def test_quickstart_runs_offline(capsys):
    runpy.run_path(str(QUICKSTART), run_name="__main__")
    out = capsys.readouterr().out.splitlines()
    assert re.match(r"Features\(sae='reference', hook='blocks\.\d+\.hook_resid_\w+', latents=\[\d+", out[0])
    samples = [line for line in out[1:] if line.startswith(("'", '"'))]
    assert len(samples) == 3
