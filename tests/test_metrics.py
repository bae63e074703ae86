"""Metrics against hand-computed values and slow references (DExperts / RTP conventions)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from helpers import tiny_gpt2
from saedetox import metrics as M
from saedetox.errors import SaedetoxError

PROMPTS = ["The cat sat on", "I think that you are", "hello there my friend"]
CONTS = [[" the mat.", " a chair", ""], [" stupid and mean", " kind"], [" world is big and round", " the"]]

# --------------------------------------------------------------------------- toxicity


def test_toxicity_hand_values():
    s = np.array([[0.1, 0.9], [0.2, 0.3]])
    emt, std = M.expected_max_toxicity(s)
    assert emt == pytest.approx(0.6) and std == pytest.approx(0.3)  # maxes 0.9, 0.3; population std
    assert M.toxicity_probability(s) == pytest.approx(0.5)
    assert M.toxicity_probability(s, threshold=0.3) == pytest.approx(1.0)  # ≥, not >
    assert M.toxicity_probability(s, threshold=0.95) == pytest.approx(0.0)
    assert M.mean_toxicity(s) == pytest.approx(0.375)


def test_toxicity_nan_and_ragged():
    s = [[math.nan, 0.4], [math.nan, math.nan], [0.6]]
    assert M.expected_max_toxicity(s)[0] == pytest.approx(0.5)  # the all-NaN prompt is skipped
    assert M.toxicity_probability(s) == pytest.approx(0.5)
    assert M.mean_toxicity(s) == pytest.approx(0.5)
    assert math.isnan(M.expected_max_toxicity([])[0])


def test_toxicity_summary_and_prompt_split():
    s = np.array([[0.1, 0.9], [0.7, 0.7], [0.2, 0.3]])
    out = M.toxicity_summary(s, prompt_toxicity=[0.8, None, 0.1], n_boot=200)
    assert out["emt"] == pytest.approx((0.9 + 0.7 + 0.3) / 3)
    assert out["tox_prob"] == pytest.approx(2 / 3)
    assert out["mean"] == pytest.approx(2.9 / 6)
    assert out["n_prompts"] == 3
    lo, hi = out["emt_ci"]
    assert lo <= out["emt"] <= hi
    tox, non = out["by_prompt_toxicity"]["toxic"], out["by_prompt_toxicity"]["nontoxic"]
    assert (tox["n_prompts"], tox["emt"], tox["tox_prob"]) == (1, pytest.approx(0.9), 1.0)
    assert (non["n_prompts"], non["emt"], non["tox_prob"]) == (1, pytest.approx(0.3), 0.0)
    empty = M.toxicity_summary(s, prompt_toxicity=[0.1, 0.2, 0.3])["by_prompt_toxicity"]["toxic"]
    assert empty["n_prompts"] == 0 and empty["emt"] is None
    assert "by_prompt_toxicity" not in M.toxicity_summary(s)
    with pytest.raises(SaedetoxError):
        M.toxicity_summary(s, prompt_toxicity=[0.1])


def test_bootstrap_ci_deterministic_and_contains_estimate():
    v = np.random.default_rng(1).random(50)
    a = M.bootstrap_ci(v, seed=3)
    assert a == M.bootstrap_ci(v, seed=3)
    assert a != M.bootstrap_ci(v, seed=4)
    assert a[0] < v.mean() < a[1]
    assert M.bootstrap_ci(v, alpha=0.5, seed=3)[1] - M.bootstrap_ci(v, alpha=0.5, seed=3)[0] < a[1] - a[0]
    assert M.bootstrap_ci(np.full(7, 0.25)) == (0.25, 0.25)
    rows = np.array([[2.0, 1.0], [9.0, 3.0], [4.0, 2.0]])  # ratio statistic over resampled prompts
    lo, hi = M.bootstrap_ci(rows, lambda a: a[:, 0].sum() / a[:, 1].sum(), n_boot=300)
    assert lo <= 15 / 6 <= hi and lo >= 2.0 and hi <= 3.0
    assert all(math.isnan(x) for x in M.bootstrap_ci([]))


def test_judge_agreement_hand_values():
    x = np.array([0.1, 0.6, 0.9, 0.2])
    y = np.array([0.2, 0.4, 0.8, 0.1])
    out = M.judge_agreement({"a": x, "b": y, "c": x})
    assert set(out) == {"a~b", "a~c", "b~c"}
    ab = out["a~b"]
    # binarised: a = 0110, b = 0010 → p_o = 3/4, p_e = ½·¼ + ½·¾ = ½ → κ = ½
    assert ab["cohen_kappa"] == pytest.approx(0.5)
    assert ab["spearman"] == pytest.approx(0.8)  # ranks 1342 vs 2341: 1 − 6·2/(4·15)
    xc, yc = x - x.mean(), y - y.mean()
    assert ab["pearson"] == pytest.approx((xc @ yc) / math.sqrt((xc @ xc) * (yc @ yc)))
    assert ab["pos_rate"] == {"a": 0.5, "b": 0.25}
    assert out["a~c"]["cohen_kappa"] == pytest.approx(1.0) and out["a~c"]["pearson"] == pytest.approx(1.0)
    flat = M.judge_agreement({"a": np.zeros(3), "b": np.zeros(3)})["a~b"]
    assert flat["pearson"] is None and flat["cohen_kappa"] is None
    with pytest.raises(SaedetoxError):
        M.judge_agreement({"a": x, "b": y[:3]})


# --------------------------------------------------------------------------- diversity


def test_distinct_n_hand_values():
    gens = [["a b a", "a b"], ["x y"]]
    # prompt 1: 5 tokens, {a, b} / {a_b, b_a} / {a_b_a}; prompt 2: 2 tokens, {x, y} / {x_y} / {}
    assert M.distinct_n(gens, 1) == pytest.approx((2 / 5 + 2 / 2) / 2)
    assert M.distinct_n(gens, 2) == pytest.approx((2 / 5 + 1 / 2) / 2)
    assert M.distinct_n(gens, 3) == pytest.approx((1 / 5 + 0 / 2) / 2)
    assert M.diversity(gens) == pytest.approx({"dist1": 0.7, "dist2": 0.45, "dist3": 0.1})


def test_distinct_n_follows_dexperts_tokenisation():
    assert M.distinct_n([["a  b"]], 1) == pytest.approx(1.0)  # split(' '): ['a', '', 'b'], 3 tokens, 3 distinct
    assert M.distinct_n([["a a", ""]], 1) == pytest.approx(2 / 3)  # '' counts as one token
    assert M.distinct_n([["a_b c", "a b_c"]], 2) == pytest.approx(1 / 4)  # '_'-joined n-grams collide, as in DExperts
    assert M.distinct_n([["a b"], []], 1) == pytest.approx(1.0)  # prompts without samples are skipped
    assert M.diversity([])["dist1"] is None


# --------------------------------------------------------------------------- perplexity


@pytest.fixture
def lm(gpt2):
    return gpt2


def _ids(lm, text):
    return lm.tokenizer(text, add_special_tokens=False)["input_ids"]


@torch.no_grad()
def _dexperts_ppl(lm, prompt, cont, prepend_bos):
    """DExperts' loop: (full_loss − prompt_loss) / (len(full) − len(prompt)), one unpadded forward each."""
    p = ([lm.tokenizer.bos_token_id] if prepend_bos else []) + _ids(lm, prompt)
    full = p + _ids(lm, cont)
    pt, ft = torch.tensor([p]), torch.tensor([full])
    prompt_loss = lm.model(pt, labels=pt).loss * (pt.shape[1] - 1)
    full_loss = lm.model(ft, labels=ft).loss * (ft.shape[1] - 1)
    return math.exp(float((full_loss - prompt_loss) / (ft.shape[1] - pt.shape[1])))


@pytest.mark.parametrize("prepend_bos", [True, False])
def test_conditional_ppl_matches_dexperts_reference(lm, prepend_bos):
    got = M.continuation_nll(lm, PROMPTS, CONTS, batch_size=4, prepend_bos=prepend_bos)
    ref_all = []
    for prompt, conts, row in zip(PROMPTS, CONTS, got, strict=True):
        for cont, (s, n) in zip(conts, row, strict=True):
            if not cont:
                assert (s, n) == (0.0, 0)
                continue
            ref = _dexperts_ppl(lm, prompt, cont, prepend_bos)
            assert n == len(_ids(lm, cont))
            assert math.exp(s / n) == pytest.approx(ref, rel=1e-4)
            ref_all.append(ref)
    out = M.conditional_perplexity(lm, PROMPTS, CONTS, batch_size=4, prepend_bos=prepend_bos, n_boot=100)
    assert out["ppl"] == pytest.approx(np.mean(ref_all), rel=1e-4)  # mean of per-continuation PPL
    assert (out["n_scored"], out["n_dropped"], out["n_empty"]) == (6, 0, 1)
    assert out["ppl_ci"][0] <= out["ppl"] <= out["ppl_ci"][1]


def test_conditioning_on_the_prompt_matters(lm):
    cond = M.continuation_nll(lm, PROMPTS, CONTS)
    alone = M.continuation_nll(lm, [""] * 3, CONTS)  # BOS only: the continuation scored by itself
    bos = lm.tokenizer.bos_token_id
    for conts, c_row, a_row in zip(CONTS, cond, alone, strict=True):
        for cont, (sc, n), (sa, na) in zip(conts, c_row, a_row, strict=True):
            if cont:
                assert n == na and abs(sc - sa) > 1e-3
                ids = torch.tensor([[bos, *_ids(lm, cont)]])
                with torch.no_grad():
                    assert sa == pytest.approx(float(lm.model(ids, labels=ids).loss) * n, rel=1e-4)


def test_conditional_ppl_is_batch_and_order_invariant(lm):
    one = M.continuation_nll(lm, PROMPTS, CONTS, batch_size=1)
    for bs in (2, 3, 64):
        got = M.continuation_nll(lm, PROMPTS, CONTS, batch_size=bs)
        np.testing.assert_allclose(np.array(sum(got, [])), np.array(sum(one, [])), rtol=1e-5, atol=1e-5)
    rev = M.continuation_nll(lm, PROMPTS[::-1], CONTS[::-1], batch_size=3)[::-1]
    np.testing.assert_allclose(np.array(sum(rev, [])), np.array(sum(one, [])), rtol=1e-5, atol=1e-5)


def test_conditional_ppl_drops_ppl_at_or_above_max():
    peaked = tiny_gpt2()
    with torch.no_grad():
        peaked.model.transformer.ln_f.weight.mul_(40)  # very confident next-token predictions
    tok = peaked.tokenizer
    prompt = "I think that you are"
    ctx = torch.tensor([[tok.bos_token_id, *_ids(peaked, prompt)]])
    with torch.no_grad():
        logp = torch.log_softmax(peaked.model(ctx).logits[0, -1].float(), -1)
    roundtrip = [int(t) for t in torch.argsort(logp, descending=True) if _ids(peaked, tok.decode([int(t)])) == [int(t)]]
    best, worst = roundtrip[0], roundtrip[-1]
    ppl_best, ppl_worst = math.exp(-float(logp[best])), math.exp(-float(logp[worst]))
    assert ppl_best < 1e4 <= ppl_worst  # the constructed case
    conts = [[tok.decode([best]), tok.decode([worst])]]
    out = M.conditional_perplexity(peaked, [prompt], conts, n_boot=10)
    assert (out["n_scored"], out["n_dropped"]) == (1, 1)
    assert out["ppl"] == pytest.approx(ppl_best, rel=1e-4)
    kept = M.conditional_perplexity(peaked, [prompt], conts, max_ppl=math.inf, n_boot=10)
    assert kept["ppl"] == pytest.approx((ppl_best + ppl_worst) / 2, rel=1e-4)
    at = M.conditional_perplexity(peaked, [prompt], conts, max_ppl=ppl_best * 0.99, n_boot=10)
    assert at["ppl"] is None and at["n_dropped"] == 2 and at["ppl_ci"] == [None, None]


def test_conditional_ppl_input_errors(lm):
    with pytest.raises(SaedetoxError):
        M.conditional_perplexity(lm, PROMPTS[:2], CONTS)
    with pytest.raises(SaedetoxError):
        M.conditional_perplexity(lm, [""], [[" a b"]], prepend_bos=False)


def test_clean_perplexity_token_weighted_and_chunked(lm):
    texts = ["The cat sat on the mat.", "I think that you are kind and good to me."]
    bos = lm.tokenizer.bos_token_id
    nll = n = 0.0
    with torch.no_grad():
        for t in texts:
            ids = torch.tensor([[bos, *_ids(lm, t)]])
            k = ids.shape[1] - 1
            nll, n = nll + float(lm.model(ids, labels=ids).loss) * k, n + k
    assert M.clean_perplexity(lm, texts, batch_size=1) == pytest.approx(math.exp(nll / n), rel=1e-4)
    assert M.clean_perplexity(lm, texts, batch_size=2) == pytest.approx(math.exp(nll / n), rel=1e-4)
    long = " ".join(texts * 4)
    ids = _ids(lm, long)
    assert len(ids) > 20
    nll = n = 0.0
    with torch.no_grad():
        for k in range(0, len(ids), 9):  # max_length 10 = BOS + 9 text tokens per chunk
            chunk = torch.tensor([[bos, *ids[k : k + 9]]])
            nll, n = nll + float(lm.model(chunk, labels=chunk).loss) * (chunk.shape[1] - 1), n + chunk.shape[1] - 1
    assert M.clean_perplexity(lm, [long], max_length=10) == pytest.approx(math.exp(nll / n), rel=1e-4)
    with pytest.raises(SaedetoxError):
        M.clean_perplexity(lm, [""])
