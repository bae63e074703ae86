"""Condition studies: levels fixed from clean runs, the refined level, and conditioned runs relabelled for workers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from saedetox.errors import SaedetoxError
from saedetox.eval.config import EvalConfig
from saedetox.experiments.conditions import Job, choose_levels, refined_levels, refined_push, run_jobs
from saedetox.experiments.config import parse_config
from saedetox.experiments.plan import plan

RUNS = [
    {"method": "none"},
    {"method": "sae", "modes": ["constant"], "push": [0.05, 0.1, 0.2]},
    {"method": "meandiff", "modes": ["constant"], "push": [0.1, 0.2]},
]
CFG = parse_config({"features": [1, 2], "runs": RUNS})


def _metrics(log_ppl: float) -> dict:
    return {
        "samples_per_prompt": 1,
        "per_prompt": {"uid": ["a", "b"], "max_tox": {}, "n_toxic": {}, "log_ppl": [log_ppl, log_ppl]},
    }


# clean PPL ratios to none (the ratios measured on challenging:dev for these curves)
RATIOS = {"sae-constant-p0.05": 0.987, "sae-constant-p0.1": 1.016, "sae-constant-p0.2": 1.322, "meandiff-p0.1": 1.002}
RATIOS["meandiff-p0.2"] = 1.194
CLEAN = {"none": _metrics(3.0)} | {n: _metrics(3.0 + math.log(r)) for n, r in RATIOS.items()}


def test_the_refined_push_puts_the_interpolated_log_ratio_on_the_target():
    pts = [(0.2, 1.322), (0.05, 0.987), (0.1, 1.016)]  # any order
    p = refined_push(pts, 1.10, digits=6)
    xs = [0.05, 0.1, 0.2]
    ys = np.log([0.987, 1.016, 1.322])
    assert 0.1 < p < 0.2
    assert np.interp(p, xs, ys) == pytest.approx(math.log(1.10), abs=1e-5)  # an independent interpolation
    assert refined_push(pts, 1.10) == round(p, 3)


def test_no_refined_push_without_a_bracket_or_when_a_level_hits_the_target():
    assert refined_push([(0.1, 1.01), (0.2, 1.05)], 1.10) is None
    assert refined_push([(0.1, 1.2), (0.2, 1.3)], 1.10) is None
    assert refined_push([(0.1, 1.0), (0.2, 1.1), (0.3, 1.3)], 1.10) is None
    assert refined_push([(0.1, 1.0)], 1.10) is None


def test_refined_levels_are_new_runs_of_their_curves():
    planned = plan(CFG)
    extra = refined_levels(["sae-constant", "meandiff"], 1.10, planned, CLEAN)
    assert [r.curve for r in extra] == ["sae-constant", "meandiff"]
    # meandiff: log-linear between 0.1 (×1.002) and 0.2 (×1.194)
    want = 0.1 + 0.1 * (math.log(1.10) - math.log(1.002)) / (math.log(1.194) - math.log(1.002))
    assert extra[1].push == pytest.approx(round(want, 3)) and extra[1].level == extra[1].push
    assert extra[1].name == f"meandiff-p{extra[1].push:g}" and extra[1].method == "meandiff"
    assert not any(r.capability for r in extra)


def test_choose_levels_takes_the_closest_clean_ratio_and_records_every_level():
    planned = plan(CFG)
    chosen, record = choose_levels(["none", "sae-constant", "meandiff"], 1.10, planned, CLEAN)
    assert chosen == {"none": "none", "sae-constant": "sae-constant-p0.1", "meandiff": "meandiff-p0.2"}
    assert record["meandiff"]["ratios"]["meandiff-p0.1"] == pytest.approx(1.002)
    assert "none" not in record
    with pytest.raises(SaedetoxError, match="ppl_ratio"):
        choose_levels(["meandiff"], None, planned, CLEAN)


def test_jobs_run_under_their_labels_and_come_back_per_condition(tmp_path: Path):
    planned = {r.name: r for r in plan(CFG)}
    ev = EvalConfig()
    jobs = [Job(a, planned[n], ev, tmp_path / a / n) for a in ("x", "y") for n in ("none", "meandiff-p0.1")]
    seen = []

    def run(r, run_ev, folder):
        seen.append((r.name, folder.relative_to(tmp_path).as_posix()))
        return {"name": r.name}

    def run_many(runs, fn):
        assert [r.name for r in runs] == ["x/none", "x/meandiff-p0.1", "y/none", "y/meandiff-p0.1"]
        assert runs[1].curve == "x/meandiff"  # one condition's curve stays in one worker
        return {r.name: fn(r) for r in runs}

    out = run_jobs(jobs, run, run_many)
    assert out == {c: {"none": {"name": "none"}, "meandiff-p0.1": {"name": "meandiff-p0.1"}} for c in ("x", "y")}
    assert ("meandiff-p0.1", "y/meandiff-p0.1") in seen
    with pytest.raises(SaedetoxError, match="twice"):
        run_jobs(jobs + jobs[:1], run, run_many)
