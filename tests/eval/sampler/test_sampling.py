"""Sampling: seeded per (seed, batch), common random numbers across methods, shared prefill = expanded batch."""

from __future__ import annotations

from dataclasses import asdict

import pytest
import torch

from helpers import SAMPLING_LATENTS as LATENTS
from helpers import SAMPLING_PROMPTS as PROMPTS
from saedetox.errors import SaedetoxError
from saedetox.eval.sampler.decode import DecodeSettings, lean_generate
from saedetox.eval.sampler.noise import NoiseStream
from saedetox.eval.sampler.sampling import SAMPLER, SamplingConfig, batch_members, iter_samples, prompt_lengths, sample
from saedetox.model.tokens import tokenize_batch
from saedetox.steering.spec import Intervention, SteeringSpec
from saedetox.steering.steerer import Steerer


def tokens(groups):
    return [s.token_ids for g in groups for s in g]


def steerer(lm, sae_dir, mode, threshold=0.1, **kw):
    # threshold 0.1: the conditional gate opens inside some prompts (not all) and rarely reopens later
    iv = Intervention(sae=str(sae_dir), latents=LATENTS, mode=mode, strength=8.0, threshold=threshold, **kw)
    return Steerer(lm, SteeringSpec([iv]))


def test_sampling_is_seeded_per_batch_and_resumable(gpt2):
    cfg = SamplingConfig(n_samples=3, max_new_tokens=5, seed=3, batch_size=6)
    a = sample(gpt2, PROMPTS, cfg)
    assert tokens(a) == tokens(sample(gpt2, PROMPTS, cfg))
    assert [len(g) for g in a] == [3] * 5 and [s.sample_index for s in a[4]] == [0, 1, 2]
    resumed = dict(iter_samples(gpt2, PROMPTS, cfg, skip_batches={0, 1}))
    assert list(resumed) == [2]
    longest = max(range(len(PROMPTS)), key=lambda i: len(gpt2.tokenizer(PROMPTS[i])["input_ids"]))
    assert [s.token_ids for s in resumed[2]] == tokens([a[longest]])  # the last batch alone: the same tokens
    other_seed = sample(gpt2, PROMPTS, SamplingConfig(n_samples=3, max_new_tokens=5, seed=4, batch_size=6))
    assert tokens(other_seed) != tokens(a)
    greedy_like = sample(gpt2, ["She walked"], SamplingConfig(n_samples=4, max_new_tokens=4, seed=0, top_p=1e-6))
    assert len({tuple(s.token_ids) for s in greedy_like[0]}) == 1  # p → 0 keeps only the top token


def test_batches_group_prompts_by_length(gpt2):
    cfg = SamplingConfig(n_samples=3, batch_size=6)  # 2 prompts per batch
    lengths = prompt_lengths(gpt2, PROMPTS)
    assert lengths == [len(gpt2.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in PROMPTS]
    assert batch_members([3, 1, 2, 1, 5], cfg) == [[1, 3], [2, 0], [4]]  # by length, ties by position
    seen = {s.prompt_index: b for b, samples in iter_samples(gpt2, PROMPTS, cfg) for s in samples}
    by_batch = [sorted(i for i, b in seen.items() if b == k) for k in range(3)]
    assert [sorted(m) for m in batch_members(lengths, cfg)] == by_batch
    assert max(lengths[i] for i in by_batch[0]) <= min(lengths[i] for i in by_batch[1] + by_batch[2])


def test_the_sampler_is_part_of_the_config():
    assert asdict(SamplingConfig())["sampler"] == SAMPLER == "lean-gumbel-v2"
    with pytest.raises(SaedetoxError, match="sampler"):
        SamplingConfig(sampler="hf-multinomial").validate()


def test_common_random_numbers_couple_methods(gpt2, sae_dir):
    cfg = SamplingConfig(n_samples=4, max_new_tokens=8, seed=0, batch_size=20)
    base = tokens(sample(gpt2, PROMPTS, cfg))
    handle = gpt2.model.transformer.h[1].register_forward_hook(lambda m, a, o: o)  # a method that changes nothing
    try:
        assert tokens(sample(gpt2, PROMPTS, cfg)) == base
    finally:
        handle.remove()
    mild = Steerer(gpt2, SteeringSpec([Intervention(sae=str(sae_dir), latents=LATENTS, mode="constant", strength=0.3)]))
    paired = tokens(sample(gpt2, PROMPTS, cfg, mild))
    unpaired = tokens(sample(gpt2, PROMPTS, SamplingConfig(n_samples=4, max_new_tokens=8, seed=1, batch_size=20), mild))
    first_same = sum(a[0] == b[0] for a, b in zip(base, paired, strict=True))
    first_indep = sum(a[0] == b[0] for a, b in zip(base, unpaired, strict=True))
    assert paired != base  # the steering does change samples
    assert first_same >= first_indep + 5, (first_same, first_indep)


@pytest.mark.parametrize("mode", ["constant", "conditional", "token", "clamp"])
def test_shared_prefill_equals_the_expanded_batch_under_steering(gpt2, sae_dir, mode):
    k = 3
    cfg = SamplingConfig(n_samples=k, max_new_tokens=8, seed=1, batch_size=len(PROMPTS) * k)
    st = steerer(gpt2, sae_dir, mode)
    groups = sample(gpt2, PROMPTS, cfg, st)
    (order,) = batch_members(prompt_lengths(gpt2, PROMPTS), cfg)  # one batch, its prompts by length
    shared = tokens([groups[i] for i in order])
    enc = tokenize_batch(gpt2.tokenizer, [PROMPTS[i] for i in order for _ in range(k)])
    pad = gpt2.tokenizer.pad_token_id
    with st:  # every row prefilled on its own: the reference
        settings = DecodeSettings(8, eos_token_id=gpt2.tokenizer.eos_token_id, pad_token_id=pad, top_p=0.9)
        full = lean_generate(gpt2.model, enc["input_ids"], enc["attention_mask"], settings, NoiseStream(1, 0))
    eos = gpt2.tokenizer.eos_token_id
    want = [row[: row.index(eos)] if eos in row else row for row in full.tolist()]
    assert shared == want
    assert tokens(groups) != tokens(sample(gpt2, PROMPTS, cfg))  # the steering acts


def test_conditional_gates_are_repeated_not_reset(gpt2, sae_dir, monkeypatch):
    cfg = SamplingConfig(n_samples=3, max_new_tokens=8, seed=1, batch_size=15)
    with_repeat = tokens(sample(gpt2, PROMPTS, cfg, steerer(gpt2, sae_dir, "conditional")))
    monkeypatch.setattr(Steerer, "repeat_batch", lambda self, n: None)  # the prototype's silent reset
    assert tokens(sample(gpt2, PROMPTS, cfg, steerer(gpt2, sae_dir, "conditional"))) != with_repeat


def test_repeat_batch_repeats_each_gate_row(gpt2, sae_dir):
    st = steerer(gpt2, sae_dir, "conditional")
    st._gates[0] = torch.tensor([True, False])
    st.repeat_batch(3)
    assert st._gates[0].tolist() == [True] * 3 + [False] * 3
    with pytest.raises(ValueError):
        st.repeat_batch(0)


@pytest.mark.parametrize("mode", ["constant", "conditional", "token", "clamp"])
@pytest.mark.parametrize("positions", ["all", "generated"])
def test_cached_equals_uncached_sampling_under_steering(gpt2, sae_dir, mode, positions):
    cached = SamplingConfig(n_samples=2, max_new_tokens=6, seed=2, batch_size=10)
    uncached = SamplingConfig(n_samples=2, max_new_tokens=6, seed=2, batch_size=10, use_cache=False)
    st = steerer(gpt2, sae_dir, mode, positions=positions)
    assert tokens(sample(gpt2, PROMPTS, cached, st)) == tokens(sample(gpt2, PROMPTS, uncached, st))


def test_greedy_sampling_equals_generate_under_steering(gpt2, sae_dir):
    cfg = SamplingConfig(n_samples=1, max_new_tokens=6, do_sample=False, batch_size=8)
    st = steerer(gpt2, sae_dir, "conditional", positions="generated")
    got = tokens(sample(gpt2, PROMPTS, cfg, st))
    enc = tokenize_batch(gpt2.tokenizer, PROMPTS)
    width = enc["input_ids"].shape[1]
    with st, st.generation(width), torch.no_grad():
        out = gpt2.model.generate(**enc, do_sample=False, max_new_tokens=6, pad_token_id=gpt2.tokenizer.pad_token_id)
    eos = gpt2.tokenizer.eos_token_id
    assert got == [row[: row.index(eos)] if eos in row else row for row in out[:, width:].tolist()]
