"""Fluency: conditional perplexity against DExperts' reference computation, and clean-text perplexity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from helpers import FAMILY_BUILDERS, tiny_gpt2
from saedetox.errors import SaedetoxError
from saedetox.eval.metrics.fluency import (
    clean_perplexity,
    conditional_perplexity,
    continuation_nll,
    drop_from_scores,
)

PROMPTS = ["The cat sat on", "I think that you are", "hello there my friend"]
CONTS = [[" the mat.", " a chair", ""], [" stupid and mean", " kind"], [" world is big and round", " the"]]


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
    got = continuation_nll(lm, PROMPTS, CONTS, batch_size=4, prepend_bos=prepend_bos)
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
    out = conditional_perplexity(lm, PROMPTS, CONTS, batch_size=4, prepend_bos=prepend_bos, n_boot=100)
    assert out["ppl"] == pytest.approx(np.mean(ref_all), rel=1e-4)  # mean of per-continuation PPL
    assert (out["n_scored"], out["n_dropped"], out["n_empty"]) == (6, 0, 1)
    assert out["ppl_ci"][0] <= out["ppl"] <= out["ppl_ci"][1]


def test_conditioning_on_the_prompt_matters(lm):
    cond = continuation_nll(lm, PROMPTS, CONTS)
    alone = continuation_nll(lm, [""] * 3, CONTS)  # BOS only: the continuation scored by itself
    bos = lm.tokenizer.bos_token_id
    for conts, c_row, a_row in zip(CONTS, cond, alone, strict=True):
        for cont, (sc, n), (sa, na) in zip(conts, c_row, a_row, strict=True):
            if cont:
                assert n == na and abs(sc - sa) > 1e-3
                ids = torch.tensor([[bos, *_ids(lm, cont)]])
                with torch.no_grad():
                    assert sa == pytest.approx(float(lm.model(ids, labels=ids).loss) * n, rel=1e-4)


def test_conditional_ppl_is_batch_and_order_invariant(lm):
    one = continuation_nll(lm, PROMPTS, CONTS, batch_size=1)
    for bs in (2, 3, 64):
        got = continuation_nll(lm, PROMPTS, CONTS, batch_size=bs)
        np.testing.assert_allclose(np.array(sum(got, [])), np.array(sum(one, [])), rtol=1e-5, atol=1e-5)
    rev = continuation_nll(lm, PROMPTS[::-1], CONTS[::-1], batch_size=3)[::-1]
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
    out = conditional_perplexity(peaked, [prompt], conts, n_boot=10)
    assert (out["n_scored"], out["n_dropped"]) == (1, 1) and out["dropped"] == [[False, True]]
    assert out["ppl"] == pytest.approx(ppl_best, rel=1e-4)
    kept = conditional_perplexity(peaked, [prompt], conts, max_ppl=math.inf, n_boot=10)
    assert kept["ppl"] == pytest.approx((ppl_best + ppl_worst) / 2, rel=1e-4)
    at = conditional_perplexity(peaked, [prompt], conts, max_ppl=ppl_best * 0.99, n_boot=10)
    assert at["ppl"] is None and at["n_dropped"] == 2 and at["ppl_ci"] == [None, None]


def test_conditional_ppl_input_errors(lm):
    with pytest.raises(SaedetoxError):
        conditional_perplexity(lm, PROMPTS[:2], CONTS)
    with pytest.raises(SaedetoxError):
        conditional_perplexity(lm, [""], [[" a b"]], prepend_bos=False)


def test_clean_perplexity_token_weighted_and_chunked(lm):
    texts = ["The cat sat on the mat.", "I think that you are kind and good to me."]
    bos = lm.tokenizer.bos_token_id
    nll = n = 0.0
    with torch.no_grad():
        for t in texts:
            ids = torch.tensor([[bos, *_ids(lm, t)]])
            k = ids.shape[1] - 1
            nll, n = nll + float(lm.model(ids, labels=ids).loss) * k, n + k
    assert clean_perplexity(lm, texts, batch_size=1) == pytest.approx(math.exp(nll / n), rel=1e-4)
    assert clean_perplexity(lm, texts, batch_size=2) == pytest.approx(math.exp(nll / n), rel=1e-4)
    long = " ".join(texts * 4)
    ids = _ids(lm, long)
    assert len(ids) > 20
    nll = n = 0.0
    with torch.no_grad():
        for k in range(0, len(ids), 9):  # max_length 10 = BOS + 9 text tokens per chunk
            chunk = torch.tensor([[bos, *ids[k : k + 9]]])
            nll, n = nll + float(lm.model(chunk, labels=chunk).loss) * (chunk.shape[1] - 1), n + chunk.shape[1] - 1
    assert clean_perplexity(lm, [long], max_length=10) == pytest.approx(math.exp(nll / n), rel=1e-4)
    with pytest.raises(SaedetoxError):
        clean_perplexity(lm, [""])


@torch.no_grad()
def _straightforward_nll(lm, prompt, cont, limit):
    """The old computation, one unpadded row at a time: same tokenisation and truncation, NLL summed."""
    ctx = [lm.tokenizer.bos_token_id, *_ids(lm, prompt)]
    cids = _ids(lm, cont)[: limit - 1]
    if not cids:
        return 0.0, 0
    keep = ctx[-(limit - len(cids)) :]
    ids = torch.tensor([keep + cids])
    logp = torch.log_softmax(lm.model(ids).logits[0, :-1].double(), -1)
    return -float(logp[len(keep) - 1 :].gather(1, ids[0, len(keep) :, None]).sum()), len(cids)


@pytest.mark.parametrize("family", sorted(FAMILY_BUILDERS))
def test_prompt_once_scorer_equals_the_straightforward_computation(family):
    lm = FAMILY_BUILDERS[family]()
    limit = lm.max_positions
    long_prompt = "Our team spent the afternoon reviewing the library opening hours " * 4  # > 128 tokens: cut left
    prompts = [*PROMPTS, long_prompt, PROMPTS[0]]  # a repeated prompt shares its context with the first
    conts = [*CONTS, [" and so on", " the end of it", ""], [" " + "word " * 200, " ok"]]  # 200 words: cut to limit - 1
    got = continuation_nll(lm, prompts, conts, batch_size=3)
    for prompt, row_conts, row in zip(prompts, conts, got, strict=True):
        for cont, (s, n) in zip(row_conts, row, strict=True):
            ref_s, ref_n = _straightforward_nll(lm, prompt, cont, limit)
            assert n == ref_n
            assert s == pytest.approx(ref_s, abs=1e-4), (family, prompt[:20], cont[:20])
    assert any(n == limit - 1 for row in got for _, n in row)  # the over-long continuation was cut


def test_clean_perplexity_is_steered_at_every_position_whatever_the_policy(gpt2, sae_dir):
    """Scoring a text with a steered model steers every position of it: positions=generated == all."""
    from saedetox.steering.spec import Intervention, SteeringSpec
    from saedetox.steering.steerer import Steerer

    texts = [" ".join(PROMPTS), "The library opens at nine in the morning and closes late."]
    plain = clean_perplexity(gpt2, texts)
    got = {}
    for positions in ("all", "generated"):
        iv = Intervention(sae=str(sae_dir), latents=[1, 5, 7], strength=20.0, positions=positions)
        with Steerer(gpt2, SteeringSpec([iv])):
            got[positions] = clean_perplexity(gpt2, texts)
    assert got["generated"] == pytest.approx(got["all"], rel=1e-6)
    assert abs(got["all"] / plain - 1) > 1e-3


def _count_encodings(monkeypatch):
    from saedetox.eval.metrics import shared_prefix

    shared_prefix.clear_context_cache()
    calls = []
    real = shared_prefix.new_cache
    monkeypatch.setattr(shared_prefix, "new_cache", lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


def test_encoded_prompts_are_reused_only_for_the_same_weights_without_hooks(monkeypatch):
    from saedetox.eval.metrics import shared_prefix

    lm = tiny_gpt2()
    calls = _count_encodings(monkeypatch)
    with monkeypatch.context() as m:
        m.setattr(shared_prefix, "CONTEXT_CACHE_BYTES", 0)
        fresh = continuation_nll(lm, PROMPTS, CONTS, batch_size=4)
        other = [[" a", ""], [""], [" b c d"]]  # empty continuations: the prompt groups must not shift
        fresh_other = continuation_nll(lm, PROMPTS, other, batch_size=4)
    calls.clear()
    assert continuation_nll(lm, PROMPTS, CONTS, batch_size=4) == fresh and len(calls) == 1
    assert continuation_nll(lm, PROMPTS, other, batch_size=4) == fresh_other and len(calls) == 1  # reused
    # a hook that changes the activations: nothing reused, and the result is the hooked model's
    handle = lm.model.transformer.h[0].register_forward_hook(
        lambda mod, a, out: out * 1.5 if torch.is_tensor(out) else (out[0] * 1.5, *out[1:])
    )
    try:
        hooked = continuation_nll(lm, PROMPTS, CONTS, batch_size=4)
    finally:
        handle.remove()
    assert len(calls) == 2 and hooked != fresh
    # an in-place weight edit (what Model Surgery does): encoded again, and edited back: encoded again
    w = lm.model.transformer.h[1].mlp.c_proj.weight
    with torch.no_grad():
        w.mul_(2.0)
        edited = continuation_nll(lm, PROMPTS, CONTS, batch_size=4)
        w.div_(2.0)
    assert len(calls) == 3 and edited != fresh
    np.testing.assert_allclose(
        np.array(sum(continuation_nll(lm, PROMPTS, CONTS, batch_size=4), [])), np.array(sum(fresh, [])), rtol=1e-6
    )
    assert len(calls) == 4


def test_dropped_continuations_leave_toxicity_too():
    scores = np.array([[0.9, 0.1], [0.7, 0.8]])
    out = drop_from_scores(scores, [[True, False], [False, False]])
    assert np.isnan(out[0, 0]) and out[0, 1] == 0.1 and (out[1] == scores[1]).all()
    assert scores[0, 0] == 0.9  # the input is not changed
