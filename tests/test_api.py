"""The public namespace ``import saedetox as sd``: lazy, complete, documented, and quiet."""

from __future__ import annotations

import ast
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

import saedetox as sd

SRC = Path(sd.__file__).parent


def test_import_is_lazy_and_pulls_in_no_torch():
    code = "import sys, saedetox as sd; assert sd.__version__; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_every_public_name_resolves_with_a_docstring():
    assert sd.__all__[0] == "__version__" and len(set(sd.__all__)) == len(sd.__all__)
    for name in sd.__all__[1:]:
        obj = getattr(sd, name)
        assert obj is not None and inspect.getdoc(obj), name
    assert set(dir(sd)) >= set(sd.__all__)
    with pytest.raises(AttributeError):
        sd.no_such_name  # noqa: B018


def test_discover_is_the_verb_even_after_the_subpackage_is_imported():
    # Python binds a subpackage to its parent's attribute on import; `sd.discover(...)` must still call discovery
    import saedetox.discover.sets  # noqa: F401
    from saedetox.discover.select import discover

    assert callable(sd.discover)
    with pytest.raises(sd.SaedetoxError, match="Unknown discovery method"):
        sd.discover(None, None, method="nope")
    assert discover.__module__ == "saedetox.discover.select"


def test_typing_block_matches_the_lazy_table():
    # the TYPE_CHECKING imports (what IDEs and type checkers see) name exactly the lazily exported objects
    tree = ast.parse((SRC / "__init__.py").read_text())
    typed = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            for imp in node.body:
                for alias in imp.names:
                    typed[alias.name] = imp.module
    exports = dict(sd._EXPORTS)
    assert typed == exports


def test_library_errors_name_no_cli_flags():
    # library code speaks API words; only saedetox.cli may name --flags
    bad = []
    for path in SRC.rglob("*.py"):
        if "cli" in path.relative_to(SRC).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            func = getattr(node, "func", None)
            if isinstance(node, ast.Call) and getattr(func, "id", getattr(func, "attr", "")) == "SaedetoxError":
                text = " ".join(
                    c.value for c in ast.walk(node) if isinstance(c, ast.Constant) and isinstance(c.value, str)
                )
                if re.search(r"(^|[\s`(])--[a-z]", text):
                    bad.append(f"{path.relative_to(SRC)}:{node.lineno}: {text[:80]}")
    assert not bad, bad


def test_load_model_prints_no_loading_bar(capfd):
    from transformers.utils import logging as hf_logging

    hf_logging.enable_progress_bar()  # as in a fresh notebook (the CLI turns them off for the whole process)
    lm = sd.load_model("reference")
    assert lm.dtype.is_floating_point and str(lm.dtype) == "torch.float32"
    err = capfd.readouterr().err
    assert "Loading weights" not in err and "%|" not in err
    assert hf_logging.is_progress_bar_enabled()  # the user's setting is restored afterwards


def test_reference_lm_is_float32_with_plain_from_pretrained():
    from transformers import AutoModelForCausalLM

    from saedetox.model.load import quiet_transformers, reference_model_dir

    with quiet_transformers():
        model = AutoModelForCausalLM.from_pretrained(reference_model_dir())
    assert next(model.parameters()).dtype.is_floating_point
    assert str(next(model.parameters()).dtype) == "torch.float32"


DOCS = SRC.parents[1] / "docs"


def test_docs_and_readme_use_only_public_names():
    # every `sd.NAME` in the user guide and the README exists in the namespace
    texts = [p.read_text() for p in DOCS.glob("*.md")] + [(SRC.parents[1] / "README.md").read_text()]
    used = {m for t in texts for m in re.findall(r"\bsd\.([A-Za-z]\w*)", t)}
    assert used and used <= set(sd.__all__), sorted(used - set(sd.__all__))


def test_layout_doc_names_every_module_as_built():
    table = (DOCS / "layout.md").read_text()
    named = set(re.findall(r"`(\w+)`", table))
    missing = sorted(
        f"{p.parent.name}/{p.stem}"
        for p in SRC.rglob("*.py")
        if p.stem not in ("__init__", "__main__") and p.parent != SRC and "tasks" not in p.parts and p.stem not in named
    )
    assert not missing, missing
