"""Steering statistics measured from the continuations (the vLLM backend's way) equal those recorded while
generating."""

from __future__ import annotations

import copy
import dataclasses
import math
from collections import Counter

import pytest

from helpers import SAMPLING_LATENTS as LATENTS
from helpers import SAMPLING_PROMPTS as PROMPTS
from saedetox.eval.runs.steering_replay import fed_tokens, replay_steering
from saedetox.eval.sampler.sampling import SamplingConfig, sample
from saedetox.methods.sae import steering_method
from saedetox.steering.spec import Intervention, SteeringSpec


def test_fed_tokens_follow_the_decode_loop():
    assert fed_tokens([5, 6, 7], 3) == [5, 6]  # ran to the length: the last token was never fed
    assert fed_tokens([5, 6], 3) == [5, 6]  # stopped by EOS (cut off): every token before it was fed
    assert fed_tokens([], 3) == []


@pytest.mark.parametrize(
    "mode,kw",
    [("constant", {}), ("conditional", {"positions": "generated"}), ("token", {}), ("conditional", {})],
)
def test_replayed_statistics_equal_the_generation_s(gpt2, sae_dir, mode, kw):
    cfg = SamplingConfig(n_samples=3, max_new_tokens=7, seed=4, batch_size=6)
    # a frequent token as EOS, so that rows stop early and the rule after an EOS is exercised
    common = Counter(t for g in sample(gpt2, PROMPTS, cfg) for s in g for t in s.token_ids[1:]).most_common(1)[0][0]
    tok = copy.deepcopy(gpt2.tokenizer)
    tok.eos_token = tok.convert_ids_to_tokens(common)
    lm = dataclasses.replace(gpt2, tokenizer=tok)
    iv = Intervention(sae=str(sae_dir), latents=LATENTS, mode=mode, strength=8.0, threshold=0.1, **kw)
    method = steering_method(lm, SteeringSpec([iv]))
    with method.context():
        groups = sample(lm, PROMPTS, cfg)
    live = method.stats()
    assert any(len(s.token_ids) < cfg.max_new_tokens for g in groups for s in g), "no row stopped at EOS"
    assert any(len(s.token_ids) == cfg.max_new_tokens for g in groups for s in g)
    replay_steering(lm, method, PROMPTS, [[s.token_ids for s in g] for g in groups], cfg)
    again = method.stats()
    assert again.keys() == live.keys()
    for key, value in live.items():
        if isinstance(value, float) and not math.isnan(value):
            assert again[key] == pytest.approx(value, rel=1e-4, abs=1e-7), key
        elif not isinstance(value, (list, dict)):
            assert again[key] == value, key
