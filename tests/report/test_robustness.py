"""The robustness comparison against hand computations on toy runs of four prompts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from saedetox.errors import SaedetoxError
from saedetox.eval.metrics.paired import compare_runs
from saedetox.report.robustness import RobustnessConfig, ppl_ratio, robustness, robustness_markdown

UIDS = ["p1", "p2", "p3", "p4"]


def run(method: str, toxic: list[int], log_ppl: list[float], order: list[int] | None = None, attack=None) -> dict:
    """Metrics with a per-prompt block (k = 1): ``toxic[i]`` 1 when prompt i's sample is toxic."""
    idx = order or [0, 1, 2, 3]
    cfg = {"method": method, **({"attack": attack} if attack else {})}
    return {
        "config": cfg,
        "samples_per_prompt": 1,
        "per_prompt": {
            "uid": [UIDS[i] for i in idx],
            "max_tox": {"probe": [0.9 if toxic[i] else 0.1 for i in idx]},
            "n_toxic": {"probe": [toxic[i] for i in idx]},
            "log_ppl": [log_ppl[i] for i in idx],
        },
    }


LP = [3.0, 3.0, 3.0, 3.0]
CLEAN = {
    "none": run("none", [1, 1, 1, 0], LP),
    "sae-a": run("sae", [0, 1, 0, 0], [3.1, 3.1, 3.1, 3.1]),
    "meandiff-b": run("meandiff", [0, 0, 0, 0], [3.2, 3.2, 3.2, 3.2]),
}
ATTACKED = {
    "fewshot": {
        "none": run("none", [1, 1, 1, 1], LP, attack="fewshot"),
        # prompts listed in another order: pairing is by prompt id, not position
        "sae-a": run("sae", [1, 1, 0, 0], [3.1] * 4, order=[3, 2, 1, 0], attack="fewshot"),
        "meandiff-b": run("meandiff", [1, 1, 1, 0], [3.2] * 4, attack="fewshot"),
    }
}


def cfg(**kw) -> RobustnessConfig:
    base = dict(attacks=["fewshot"], runs=["none", "sae-a", "meandiff-b"], primary="sae-a", baseline="meandiff-b")
    return RobustnessConfig(**{**base, **kw})


def test_increases_and_their_difference_by_hand():
    res = robustness(CLEAN, ATTACKED, cfg(), "probe")
    block = res["attacks"]["fewshot"]
    # increases per prompt: none (0,0,0,1) → 0.25; sae (1,0,0,0) → 0.25; meandiff (1,1,1,0) → 0.75
    assert block["runs"]["none"]["increase"] == pytest.approx(0.25)
    assert block["runs"]["sae-a"]["clean"] == pytest.approx(0.25)
    assert block["runs"]["sae-a"]["attacked"] == pytest.approx(0.5)
    assert block["runs"]["sae-a"]["increase"] == pytest.approx(0.25)
    assert block["runs"]["meandiff-b"]["increase"] == pytest.approx(0.75)
    h = block["headline"]
    # per-prompt differences sae − meandiff: (0, −1, −1, 0) → mean −0.5
    assert h["increase_a"] == pytest.approx(0.25) and h["increase_b"] == pytest.approx(0.75)
    assert h["diff"] == pytest.approx(-0.5) and h["n"] == 4
    assert h["relative_reduction"] == pytest.approx(1 - 0.25 / 0.75)
    # p is the BCa interval's test inversion: the CI excludes 0 exactly when p < 0.05
    assert (h["ci"][1] < 0 or h["ci"][0] > 0) is (h["p"] < 0.05)
    lo, hi = h["ci"]
    assert -1.0 <= lo <= -0.5 <= hi <= 0.0
    assert h["met"] is (hi < 0 and h["relative_reduction"] >= 0.3)
    assert [(p["sae"], p["baseline"]) for p in block["pairs"]] == [("sae-a", "meandiff-b")]
    # clean PPL ratios to the first run: exp(0.1), exp(0.2)
    assert block["runs"]["meandiff-b"]["clean_ppl_ratio"] == pytest.approx(math.exp(0.2))
    assert res["families"] == {"none": "other", "sae-a": "sae", "meandiff-b": "baseline"}


def test_difference_ci_is_the_paired_bootstrap_of_the_increases():
    from saedetox.eval.metrics.paired import paired_difference

    res = robustness(CLEAN, ATTACKED, cfg(n_boot=500, seed=3), "probe")
    d, ci, p, n = paired_difference(
        np.array([1.0, 0, 0, 0]), np.array([1.0, 1, 1, 0]), n_boot=500, seed=3, p_kind="bootstrap"
    )
    h = res["attacks"]["fewshot"]["headline"]
    assert [h["diff"], *h["ci"], h["p"], h["n"]] == pytest.approx([d, *ci, p, n])


def test_a_missing_attacked_run_or_other_prompts_is_refused():
    with pytest.raises(SaedetoxError, match="lacks run"):
        robustness(CLEAN, {"fewshot": {"none": ATTACKED["fewshot"]["none"]}}, cfg(), "probe")
    other = {**ATTACKED["fewshot"], "sae-a": {**run("sae", [0] * 4, LP), "per_prompt": None}}
    with pytest.raises(SaedetoxError, match="per-prompt"):
        robustness(CLEAN, {"fewshot": other}, cfg(), "probe")


def test_compare_refuses_an_attacked_run_against_a_clean_one():
    with pytest.raises(SaedetoxError, match="under attack 'fewshot'.*without attack"):
        compare_runs(ATTACKED["fewshot"]["none"], CLEAN["none"], names=("a", "b"), n_boot=100)
    same = compare_runs(ATTACKED["fewshot"]["sae-a"], ATTACKED["fewshot"]["meandiff-b"], n_boot=100)
    assert same["differences"][0]["diff"] == pytest.approx(0.5 - 0.75)


def test_config_refuses_bad_sections():
    with pytest.raises(SaedetoxError, match="Unknown attack"):
        cfg(attacks=["nope"])
    with pytest.raises(SaedetoxError, match="primary must be one of"):
        cfg(primary="other")
    with pytest.raises(SaedetoxError, match="ppl_ratio"):
        cfg(ppl_ratio=0.9)
    with pytest.raises(SaedetoxError, match="goal"):
        cfg(goal=2)


def test_markdown_states_the_question_k_and_the_numbers():
    md = robustness_markdown(robustness(CLEAN, ATTACKED, cfg(), "probe"))
    assert "k = 1 samples per prompt" in md and "### fewshot" in md
    assert "| sae-a − meandiff-b | -0.500 |" in md.replace("−0.500", "-0.500")
    assert ppl_ratio(CLEAN["none"], CLEAN["sae-a"]) == pytest.approx(math.exp(0.1))
