"""The lean decode loop reproduces ``generate`` token for token on every supported architecture."""

from __future__ import annotations

import pytest
import torch
from transformers.cache_utils import DynamicSlidingWindowLayer

from helpers import FAMILY_BUILDERS
from saedetox.eval.sampler.decode import DecodeSettings, lean_generate
from saedetox.eval.sampler.kvcache import PreallocLayer, new_cache
from saedetox.model.tokens import tokenize_batch

N_NEW = 10
SHORT = ["The cat sat on the mat and", "hello", "I think that you are", "She walked to the"]
# ~83 tokens with the tiny tokenizer: past the tiny Gemma-2 / Mistral sliding window of 64
LONG = ["Our team spent the afternoon reviewing the library opening hours " * 2, "hello there"]


@pytest.fixture(scope="module", params=sorted(FAMILY_BUILDERS))
def family(request):
    return request.param, FAMILY_BUILDERS[request.param]()


def hf_greedy(lm, enc, eos, use_cache=True):
    width = enc["input_ids"].shape[1]
    with torch.no_grad():
        out = lm.model.generate(
            **enc,
            do_sample=False,
            max_new_tokens=N_NEW,
            pad_token_id=lm.tokenizer.pad_token_id,
            eos_token_id=eos,
            use_cache=use_cache,
        )
    new = out[:, width:]
    full = torch.full((new.shape[0], N_NEW), lm.tokenizer.pad_token_id, dtype=torch.long)
    full[:, : new.shape[1]] = new  # generate stops early once every row has emitted EOS
    return full


def lean(lm, enc, eos, noise=None, **kw):
    settings = DecodeSettings(max_new_tokens=N_NEW, eos_token_id=eos, pad_token_id=lm.tokenizer.pad_token_id, **kw)
    return lean_generate(lm.model, enc["input_ids"], enc["attention_mask"], settings, noise)


@pytest.mark.parametrize("prompts", [SHORT, LONG, SHORT[:1]], ids=["padded", "past-window", "unpadded"])
def test_greedy_equals_generate(family, prompts):
    name, lm = family
    enc = tokenize_batch(lm.tokenizer, prompts)
    free = hf_greedy(lm, enc, None)
    eos = int(free[0, 2])  # a token greedy decoding emits early: EOS handling is exercised
    want = hf_greedy(lm, enc, eos)
    assert (want == eos).any() and (want == lm.tokenizer.pad_token_id).any() or len(prompts) == 1
    assert torch.equal(lean(lm, enc, None), free), name
    assert torch.equal(lean(lm, enc, eos), want), name
    assert torch.equal(lean(lm, enc, eos, use_cache=False), want), name


def test_shared_prefill_equals_generate_on_the_expanded_batch(family):
    name, lm = family
    enc = tokenize_batch(lm.tokenizer, SHORT)
    expanded = {k: v.repeat_interleave(3, dim=0) for k, v in enc.items()}
    want = hf_greedy(lm, expanded, None)
    assert torch.equal(lean(lm, enc, None, n_repeat=3), want), name


def test_cache_layers_follow_the_model_layer_types(family):
    name, lm = family
    cfg = lm.model.config
    window = getattr(cfg, "sliding_window", None)
    short, long = new_cache(lm.model, 32), new_cache(lm.model, 100)
    assert all(isinstance(layer, PreallocLayer) for layer in short.layers), name
    kinds = [type(layer) for layer in long.layers]
    if window is None or name not in ("gemma2", "mistral"):
        assert all(k is PreallocLayer for k in kinds), name
    elif name == "gemma2":  # hybrid: sliding layers outgrow the window, full layers stay preallocated
        assert DynamicSlidingWindowLayer in kinds and PreallocLayer in kinds
    else:
        assert all(k is DynamicSlidingWindowLayer for k in kinds)


def test_prealloc_layer_refuses_to_overflow():
    layer = PreallocLayer(4)
    k = torch.zeros(1, 2, 3, 8)
    layer.update(k, k)
    assert layer.get_seq_length() == 3 and layer.keys.shape == (1, 2, 3, 8)
    with pytest.raises(RuntimeError, match="KV cache full"):
        layer.update(k, k)
