"""``evaluate`` from Python: what it accepts as the method, and the typed RunResult it returns."""

from __future__ import annotations

import json

import pytest

from saedetox.errors import SaedetoxError
from saedetox.eval.config import EvalConfig
from saedetox.eval.result import RunResult
from saedetox.eval.run import evaluate
from saedetox.methods.registry import build_method
from saedetox.steering.spec import Intervention, SteeringSpec


def cfg() -> EvalConfig:
    return EvalConfig(
        n_prompts=4, samples=2, max_new_tokens=4, batch_size=4, judges=("profanity", "probe"), clean_texts=2, n_boot=20
    )


def conts(run) -> list:
    return [json.loads(line)["continuations"] for line in (run / "generations.jsonl").read_text().splitlines()]


def test_run_result_reads_like_metrics_json(tmp_path, gpt2):
    res = evaluate(gpt2, tmp_path / "none", cfg())
    on_disk = json.loads((tmp_path / "none" / "metrics.json").read_text())
    assert isinstance(res, RunResult) and json.loads(json.dumps(res)) == on_disk and res.path == tmp_path / "none"
    tox = on_disk["toxicity"]
    assert res.judges == ["profanity", "probe"]
    t = res.toxicity("probe")
    assert (t.tox_prob, t.emt, t.mean) == (tox["probe"]["tox_prob"], tox["probe"]["emt"], tox["probe"]["mean"])
    assert t.tox_prob_ci == tuple(tox["probe"]["tox_prob_ci"]) and t.n_prompts == 4
    assert res.tox_prob == tox["profanity"]["tox_prob"] and res.emt == tox["profanity"]["emt"]  # the first judge
    assert res.ppl == on_disk["fluency"]["ppl_conditional"] and res.dist2 == on_disk["diversity"]["dist2"]
    assert res.ppl_clean == on_disk["fluency"]["ppl_clean"] and res.effective_push is None
    assert res.config["method"] == "none" and "none" in repr(res)
    assert RunResult.load(tmp_path / "none") == on_disk
    with pytest.raises(SaedetoxError, match="No judge 'x'"):
        res.toxicity("x")
    with pytest.raises(SaedetoxError, match="no finished run"):
        RunResult.load(tmp_path / "missing")


def test_a_spec_or_a_name_is_a_method(tmp_path, gpt2, sae_dir):
    spec = SteeringSpec([Intervention(sae=str(sae_dir), latents=[1, 2], tier="high")])
    direct = evaluate(gpt2, tmp_path / "direct", cfg(), build_method(gpt2, "sae", spec))
    by_spec = evaluate(gpt2, tmp_path / "spec", cfg(), spec)
    assert by_spec.config["method"] == "sae" and by_spec.effective_push == pytest.approx(0.5, rel=1e-5)
    assert conts(tmp_path / "spec") == conts(tmp_path / "direct")
    assert by_spec.toxicity().tox_prob == direct.toxicity().tox_prob
    prompt = evaluate(gpt2, tmp_path / "prompt", cfg(), "prompt")
    assert prompt.config["method"] == "prompt" and prompt.config["prefix"]
    with pytest.raises(SaedetoxError, match="method must be"):
        evaluate(gpt2, tmp_path / "bad", cfg(), 3)  # type: ignore[arg-type]


def test_accessors_read_partial_and_malformed_metrics_as_missing():
    m = {
        "config": {"run": "r1", "method": "sae", "sampling": {"n_samples": 25}},
        "toxicity": {"probe": {"tox_prob": 0.25, "by_prompt_toxicity": {"toxic": {"emt": 0.7}}}},
        "fluency": [1.0, 2.0],  # not an object: every fluency number is missing
        "diversity": {"dist1": 0.5, "dist3": 0.9},
        "capability": {"arc_easy": 0.4},
        "capability_ppl": {"lambada": 21.5},
        "judge_agreement": {"a~b": {"pearson": 0.7}},
        "steering": "unmeasured",
        "samples_per_prompt": None,
        "wall_seconds": 12.0,
    }
    res = RunResult(m)
    assert res.toxicity_value("probe", "tox_prob") == 0.25 and res.toxicity_value("probe", "emt") is None
    assert res.toxicity_value("probe", "emt", "toxic") == 0.7 and res.toxicity_value("probe", "emt", "nontoxic") is None
    assert res.toxicity_value("other", "tox_prob") is None and res.judges == ["probe"]
    assert (res.ppl, res.ppl_ci, res.ppl_clean, res.effective_push) == (None, None, None, None)
    assert (res.dist1, res.dist2, res.dist3, res.wall_seconds) == (0.5, None, 0.9, 12.0)
    assert res.capability == {"arc_easy": 0.4} and res.capability_ppl == {"lambada": 21.5}
    assert res.judge_agreement == {"a~b": {"pearson": 0.7}}
    assert res.samples_per_prompt == 25  # samples_per_prompt is null: the sampling config's n_samples
    assert RunResult({"samples_per_prompt": 5.0, "config": {"sampling": {"n_samples": 25}}}).samples_per_prompt == 5
    assert RunResult({"samples_per_prompt": True}).samples_per_prompt is None  # a bool is not a count
    assert res.config_value("run") == "r1" and res.config_value("mode") is None
    assert RunResult({"config": "bad"}).config == {} and RunResult({"config": "bad"}).config_value("run") is None
    assert RunResult.of(res) is res
    wrapped = RunResult.of(m)
    assert isinstance(wrapped, RunResult) and wrapped == m and wrapped is not m
