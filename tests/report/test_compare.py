"""``compare``: naming runs (folders, files, SWEEP::RUN, names in a sweep) and the printed table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from saedetox.errors import SaedetoxError
from saedetox.eval.metrics.paired import compare_runs
from saedetox.report.compare import compare, format_comparison, resolve_run
from synthetic_runs import World, sweep


@pytest.fixture
def files(tmp_path: Path) -> Path:
    runs = sweep(World(n=40))
    (tmp_path / "sw").mkdir()
    (tmp_path / "sw" / "metrics.json").write_text(json.dumps(runs))
    for name in ("none", "sae-adaptive-n0.2"):
        (tmp_path / "sw" / "runs" / name).mkdir(parents=True)
        (tmp_path / "sw" / "runs" / name / "metrics.json").write_text(json.dumps(runs[name]))
    return tmp_path


def test_every_way_of_naming_a_run_gives_the_same_answer(files: Path) -> None:
    sw = files / "sw"
    want = compare(sw / "runs" / "sae-adaptive-n0.2", sw / "runs" / "none" / "metrics.json", n_boot=200)
    assert want["a"] == "sae-adaptive-n0.2" and want["b"] == "none"
    for a, b, kw in (
        (f"{sw}/metrics.json::sae-adaptive-n0.2", f"{sw}::none", {}),
        ("sae-adaptive-n0.2", "none", {"sweep": sw}),
        ("sae-adaptive-n0.2", "none", {"sweep": sw / "metrics.json"}),
    ):
        assert compare(a, b, n_boot=200, **kw) == want
    runs = json.loads((sw / "metrics.json").read_text())
    direct = compare_runs(runs["sae-adaptive-n0.2"], runs["none"], names=("sae-adaptive-n0.2", "none"), n_boot=200)
    assert direct == want
    assert resolve_run(runs["none"], default="B")[0] == "B"


def test_bad_run_names_are_one_line(files: Path) -> None:
    sw = files / "sw"
    for a, kw, msg in (
        (str(sw), {}, "sweep's metrics.json with 15 runs; name one as"),
        (f"{sw}::nope", {}, "no run named 'nope'"),
        ("nope", {"sweep": sw}, "no run named 'nope'"),
        (str(files / "missing"), {}, "not found"),
    ):
        with pytest.raises(SaedetoxError, match=msg) as e:
            compare(a, f"{sw}::none", **kw)
        assert "\n" not in str(e.value)


def test_format_comparison(files: Path) -> None:
    res = compare(f"{files / 'sw'}::sae-adaptive-n0.4", f"{files / 'sw'}::none", n_boot=200)
    text = format_comparison(res)
    lines = text.splitlines()
    assert lines[0].startswith("A = sae-adaptive-n0.4, B = none · judge probe · k = 5") and "40 prompts" in lines[0]
    rows = {ln.split("  ")[0].strip(): ln for ln in lines if ln.startswith(("toxicity", "EMT", "mean log"))}
    tox = next(d for d in res["differences"] if d["metric"] == "tox_prob")
    assert f"{tox['diff']:+.3f}" in rows["toxicity probability"]
    assert f"[{tox['ci'][0]:+.3f}, {tox['ci'][1]:+.3f}]" in rows["toxicity probability"]
    assert "PPL ratio A / B" in text and "sign-flip" in text and "not comparable with papers that use k = 25" in text
