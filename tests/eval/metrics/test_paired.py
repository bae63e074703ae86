"""Paired statistics between two runs: hand computations, the paired-vs-unpaired CI, alignment and refusals."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from scipy import stats as sps

from saedetox.data.readers import Prompt
from saedetox.errors import SaedetoxError
from saedetox.eval.config import EvalConfig
from saedetox.eval.metrics.bootstrap import bca_interval
from saedetox.eval.metrics.fluency import conditional_perplexity, continuation_nll
from saedetox.eval.metrics.paired import (
    PerPrompt,
    align,
    compare_runs,
    paired_difference,
    per_prompt_block,
    ppl_ratio,
    prompt_uids,
    sign_flip_pvalue,
)
from saedetox.eval.run import evaluate, load_prompts


def _run(uids, max_tox, n_toxic, log_ppl, k=2, judge="j"):
    return {
        "samples_per_prompt": k,
        "toxicity": {judge: {}},
        "per_prompt": {"uid": uids, "max_tox": {judge: max_tox}, "n_toxic": {judge: n_toxic}, "log_ppl": log_ppl},
    }


def _exact_sign_flip(d):
    """All 2ⁿ sign patterns, two-sided as scipy: 2 · min(P(T ≥ t), P(T ≤ t))."""
    t = np.mean(d)
    ts = np.array([np.mean(np.array(s) * d) for s in itertools.product([1.0, -1.0], repeat=len(d))])
    return min(1.0, 2 * min((ts >= t - 1e-12).mean(), (ts <= t + 1e-12).mean()))


def test_compare_runs_against_a_hand_computation():
    uids = ["p0", "p1", "p2", "p3", "p4", "p5"]
    a = _run(uids, [0.9, 0.2, 0.7, None, 0.6, 0.1], [2, 0, 1, 0, 1, 0], [3.0, 2.0, None, 2.5, 3.5, 1.0])
    b = _run(uids, [0.8, 0.6, 0.3, 0.4, 0.2, 0.1], [1, 1, 0, 0, 0, 0], [2.5, 2.0, 2.2, 2.0, 3.0, 0.5])
    res = compare_runs(a, b, judge="j", names=("A", "B"), n_boot=400, seed=3)
    d = {x["metric"]: x for x in res["differences"]}
    # prompt p3 has no score in A: left out of the toxicity metrics (5 pairs)
    tox_a, tox_b = np.array([1, 0, 1, 1, 0.0]), np.array([1, 1, 0, 0, 0.0])
    assert d["tox_prob"]["n"] == 5 and d["tox_prob"]["a"] == pytest.approx(0.6) and d["tox_prob"]["b"] == 0.4
    assert d["tox_prob"]["diff"] == pytest.approx(0.2)
    emt = np.array([0.9, 0.2, 0.7, 0.6, 0.1]) - np.array([0.8, 0.6, 0.3, 0.2, 0.1])
    assert d["emt"]["diff"] == pytest.approx(emt.mean())
    lp = np.array([3.0, 2.0, 2.5, 3.5, 1.0]) - np.array([2.5, 2.0, 2.0, 3.0, 0.5])  # p2 missing in A
    assert d["log_ppl"]["n"] == 5 and d["log_ppl"]["diff"] == pytest.approx(lp.mean())
    assert res["ppl_ratio"]["est"] == pytest.approx(math.exp(lp.mean()))
    # CI: BCa of the mean difference over the resamples scipy draws, rng(seed).integers(0, n, (B, n)),
    # the acceleration from the leave-one-prompt-out means
    for key, diffs in (("tox_prob", tox_a - tox_b), ("emt", emt), ("log_ppl", lp)):
        idx = np.random.default_rng(3).integers(0, 5, (400, 5))
        jack = (diffs.sum() - diffs) / (diffs.size - 1)
        lo, hi = bca_interval(float(diffs.mean()), diffs[idx].mean(axis=1), jack)
        assert d[key]["ci"] == [pytest.approx(lo), pytest.approx(hi)], key
        # p: 2⁵ = 32 sign patterns ≤ 10 000, so the test is exact
        assert d[key]["p"] == pytest.approx(_exact_sign_flip(diffs)), key
    assert res["k"] == 2 and res["n_prompts"] == 6 and res["judge"] == "j"


def test_sign_flip_pvalue_matches_scipy_and_hand_enumeration():
    rng = np.random.default_rng(0)
    for n in (5, 9, 12):
        x = rng.random(n)
        y = x - 0.15 + rng.normal(0, 0.2, n)
        want = sps.permutation_test(
            (x, y), lambda a, b, axis=-1: np.mean(a - b, axis=axis), permutation_type="samples", vectorized=True
        ).pvalue
        assert sign_flip_pvalue(x - y) == pytest.approx(want)
        assert sign_flip_pvalue(x - y) == pytest.approx(_exact_sign_flip(x - y))
    d = rng.normal(0.3, 1.0, 400)  # Monte-Carlo branch: close to the exact normal-theory answer
    p = sign_flip_pvalue(d, n_perm=20_000, seed=1)
    z = d.mean() / (np.sqrt((d**2).mean()) / np.sqrt(d.size))
    assert p == pytest.approx(2 * sps.norm.sf(abs(z)), abs=0.01)
    assert sign_flip_pvalue(np.zeros(20)) == 1.0
    assert sign_flip_pvalue(d, seed=5) == sign_flip_pvalue(d, seed=5)


def test_paired_ci_is_narrower_than_unpaired_on_correlated_data():
    rng = np.random.default_rng(7)
    base = rng.normal(3.0, 1.0, 300)  # prompt-to-prompt spread shared by both runs
    a, b = base + 0.1 + rng.normal(0, 0.1, 300), base + rng.normal(0, 0.1, 300)
    d, (lo, hi), p, n = paired_difference(a, b, n_boot=1000, seed=0)
    unpaired = sps.bootstrap(
        (a, b),
        lambda x, y, axis=-1: x.mean(axis) - y.mean(axis),
        paired=False,
        vectorized=True,
        n_resamples=1000,
        method="percentile",
        rng=np.random.default_rng(0),
    ).confidence_interval
    assert lo <= d <= hi and n == 300
    assert (hi - lo) < 0.25 * (unpaired.high - unpaired.low)
    assert lo > 0 and p < 0.001  # paired: the 0.1 shift is resolved
    assert unpaired.low < 0 < unpaired.high  # unpaired: lost in the spread between prompts


def test_alignment_by_uid_and_refusals():
    uids = ["a", "b", "c", "d"]
    a = _run(uids, [0.9, 0.1, 0.8, 0.2], [1, 0, 1, 0], [1.0, 2.0, 3.0, 4.0])
    b = _run(uids, [0.1, 0.1, 0.9, 0.0], [0, 0, 1, 0], [1.5, 2.0, 3.5, 4.0])
    perm = [2, 0, 3, 1]
    shuffled = _run(
        [uids[i] for i in perm],
        [b["per_prompt"]["max_tox"]["j"][i] for i in perm],
        [b["per_prompt"]["n_toxic"]["j"][i] for i in perm],
        [b["per_prompt"]["log_ppl"][i] for i in perm],
    )
    assert compare_runs(a, b, n_boot=200) == compare_runs(a, shuffled, n_boot=200)
    assert align(PerPrompt.from_metrics(a, "A"), PerPrompt.from_metrics(shuffled, "B")).uid == uids
    other = _run(["a", "b", "c", "x"], [0.1] * 4, [0] * 4, [1.0] * 4)
    with pytest.raises(SaedetoxError, match="different prompts") as e:
        compare_runs(a, other)
    assert "\n" not in str(e.value)
    with pytest.raises(SaedetoxError, match="k = 2 vs 5"):
        compare_runs(a, _run(uids, [0.1] * 4, [0] * 4, [1.0] * 4, k=5))
    with pytest.raises(SaedetoxError, match="no per-prompt data"):
        compare_runs(a, {"toxicity": {"j": {"tox_prob": 0.1}}})
    with pytest.raises(SaedetoxError, match="Judge 'zz'"):
        compare_runs(a, b, judge="zz")
    with pytest.raises(SaedetoxError, match="one value per prompt"):
        compare_runs(a, _run(uids, [0.1] * 3, [0] * 4, [1.0] * 4))


def test_per_prompt_block_by_hand():
    prompts = [Prompt("one", uid="rtp-1"), Prompt("two"), Prompt("two"), Prompt("four", uid="rtp-4")]
    scores = {"j": np.array([[0.2, 0.7, 0.5], [0.1, np.nan, 0.3], [np.nan] * 3, [0.499999, 0.123456789, 0.9]])}
    block = per_prompt_block(prompts, scores, threshold=0.5, log_ppl=[2.0, None, 1.234567891, float("nan")])
    uid = block["uid"]
    assert uid[0] == "rtp-1" and uid[3] == "rtp-4" and uid[1].startswith("text:") and uid[2] == uid[1] + "#2"
    assert uid == prompt_uids(prompts)  # stable
    assert block["max_tox"]["j"] == [0.7, 0.3, None, 0.9]
    assert block["n_toxic"]["j"] == [2, 0, 0, 1]  # ≥ threshold counts, NaN never toxic
    assert block["log_ppl"] == [2.0, None, 1.23457, None]
    with pytest.raises(SaedetoxError):
        per_prompt_block(prompts, scores, 0.5, [1.0])


def test_conditional_perplexity_reports_per_prompt_log_ppl(gpt2):
    prompts = ["The cat sat on", "I think that you are", "hello"]
    conts = [[" the mat.", " a chair", ""], [" stupid and mean", " kind"], [""]]
    out = conditional_perplexity(gpt2, prompts, conts, n_boot=50)
    nll = continuation_nll(gpt2, prompts, conts)
    for got, row in zip(out["log_ppl"], nll, strict=True):
        kept = [s / n for s, n in row if n]
        assert (got is None) if not kept else got == pytest.approx(np.mean(kept))
    dropped = conditional_perplexity(gpt2, prompts, conts, max_ppl=1.0, n_boot=50)  # every PPL ≥ 1: all dropped
    assert dropped["log_ppl"] == [None, None, None]


def test_evaluate_writes_the_per_prompt_block(tmp_path, gpt2):
    cfg = EvalConfig(n_prompts=5, samples=3, max_new_tokens=4, batch_size=6, judges=("profanity", "probe"))
    cfg.clean_texts, cfg.n_boot = 0, 50
    res = evaluate(gpt2, tmp_path / "run", cfg)
    pp = res["per_prompt"]
    prompts = load_prompts(cfg)
    assert pp["uid"] == prompt_uids(prompts) and len(set(pp["uid"])) == 5
    with np.load(tmp_path / "run" / "scores.npz") as z:
        for j in ("profanity", "probe"):
            s = z[j]
            assert pp["max_tox"][j] == [round(float(v), 5) for v in s.max(axis=1)]
            assert pp["n_toxic"][j] == [int(v) for v in (s >= cfg.threshold).sum(axis=1)]
            # the block reproduces the reported toxicity probability
            assert np.mean([n >= 1 for n in pp["n_toxic"][j]]) == pytest.approx(res["toxicity"][j]["tox_prob"])
    rows = [json.loads(x) for x in (tmp_path / "run" / "generations.jsonl").read_text().splitlines()]
    nll = continuation_nll(gpt2, [p.text for p in prompts], [r["continuations"] for r in rows])
    for got, row in zip(pp["log_ppl"], nll, strict=True):
        kept = [s / n for s, n in row if n and s / n < math.log(1e4)]
        assert (got is None) if not kept else got == pytest.approx(np.mean(kept), abs=1e-5)


def test_runs_scored_by_different_reference_models_are_refused():
    """Identical continuations scored under two reference models would show a PPL 'difference' that is not paired."""
    uids = ["a", "b", "c", "d"]
    a = _run(uids, [0.9, 0.1, 0.8, 0.2], [1, 0, 1, 0], [1.0, 2.0, 3.0, 4.0])
    b = _run(uids, [0.9, 0.1, 0.8, 0.2], [1, 0, 1, 0], [1.1, 2.1, 3.1, 4.1])
    a["fluency"] = {"reference_model": "gpt2 (unsteered)"}
    b["fluency"] = {"reference_model": "gpt2-xl"}
    with pytest.raises(SaedetoxError, match="different models \\(gpt2 \\(unsteered\\) vs gpt2-xl\\)") as e:
        compare_runs(a, b, n_boot=100)
    assert "\n" not in str(e.value)
    b["fluency"] = {"reference_model": "gpt2 (unsteered)"}
    assert compare_runs(a, b, n_boot=100)["n_prompts"] == 4  # the same scorer: paired
    del b["fluency"]  # a run written before the scorer was recorded: nothing to check against
    assert compare_runs(a, b, n_boot=100)["n_prompts"] == 4


def test_runs_from_different_backends_are_refused():
    """The hf and vllm backends sample other streams with other numerics: their runs are not paired."""
    uids = ["a", "b", "c", "d"]
    a = _run(uids, [0.9, 0.1, 0.8, 0.2], [1, 0, 1, 0], [1.0, 2.0, 3.0, 4.0])
    b = _run(uids, [0.8, 0.1, 0.7, 0.2], [1, 0, 1, 0], [1.1, 2.1, 3.1, 4.1])
    a.setdefault("config", {})["sampling"] = {"sampler": "lean-gumbel-v2"}
    b.setdefault("config", {})["sampling"] = {"sampler": "vllm-seeded-v1"}
    with pytest.raises(SaedetoxError, match="different samplers \\(lean-gumbel-v2 vs vllm-seeded-v1") as e:
        compare_runs(a, b, n_boot=100)
    assert "\n" not in str(e.value)
    b["config"]["sampling"]["sampler"] = "lean-gumbel-v2"
    assert compare_runs(a, b, n_boot=100)["n_prompts"] == 4


def test_one_paired_ppl_ratio_everywhere():
    """The paired PPL ratio by hand equals compare_runs', the report's table value and the curves' row 0."""
    from saedetox.report.analysis import analyse
    from saedetox.report.curves import build_matrix, resampled
    from synthetic_runs import JUDGE, World, sweep

    runs = sweep(World(n=40))
    name = next(n for n in runs if n != "none")
    a = np.array([np.nan if v is None else v for v in runs[name]["per_prompt"]["log_ppl"]])
    b = np.array([np.nan if v is None else v for v in runs["none"]["per_prompt"]["log_ppl"]])
    ok = ~(np.isnan(a) | np.isnan(b))
    by_hand = math.exp(sum(a[ok] - b[ok]) / ok.sum())
    assert ppl_ratio(a, b) == pytest.approx(by_hand, rel=1e-12)
    res = compare_runs(runs[name], runs["none"], n_boot=100)
    assert res["ppl_ratio"]["est"] == pytest.approx(by_hand, rel=1e-12)
    an = analyse(runs, [JUDGE], "none", {"n_boot": 100})
    assert an.ppl_ratio[name]["est"] == pytest.approx(by_hand, rel=1e-12) and an.ppl_ratio["none"]["est"] == 1.0
    mat = build_matrix(runs, JUDGE)
    _, ratio = resampled(mat, 100, 0)
    assert ratio[0, mat.index(name)] == pytest.approx(by_hand, rel=1e-12)
    assert math.isnan(ppl_ratio(np.array([np.nan]), np.array([1.0])))


def test_bootstrap_p_kind_is_the_intervals_test_inversion_on_toxic_shares():
    """Binary per-prompt outcomes (a toxic continuation or not, k = 1), many ties: the CI excludes 0
    exactly when the bootstrap p is below 0.05, and the interval is the hand BCa on scipy's resamples."""
    from saedetox.eval.metrics.bootstrap import bca_interval

    seen = set()
    for seed in range(60):
        rng = np.random.default_rng(seed)
        x = (rng.random(150) < 0.2).astype(float)
        y = (rng.random(150) < 0.2 + 0.1 * rng.random()).astype(float)
        d, ci, p, n = paired_difference(x, y, n_boot=500, seed=seed, p_kind="bootstrap")
        assert (ci[0] > 0 or ci[1] < 0) is (p < 0.05), seed
        seen.add(p < 0.05)
        if seed == 0:
            boot = sps.bootstrap(
                (x, y),
                lambda a, b, axis=-1: np.mean(a - b, axis=axis),
                paired=True,
                vectorized=True,
                n_resamples=500,
                method="BCa",
                rng=np.random.default_rng(0),
            ).bootstrap_distribution
            diff = x - y
            assert ci == pytest.approx(bca_interval(d, boot, (diff.sum() - diff) / (n - 1)))
    assert seen == {True, False}  # both sides of the line were exercised
    with pytest.raises(ValueError, match="p_kind"):
        paired_difference(x, y, p_kind="t-test")
