"""Steering semantics (docs/steering.md) against independent reference computations."""

from __future__ import annotations

import pytest
import torch

from helpers import tiny_llama, write_sae
from saedetox.errors import SaedetoxError
from saedetox.eval.sampler.sampling import SamplingConfig, sample
from saedetox.model.tokens import tokenize_batch
from saedetox.sae.load import load_sae
from saedetox.steering.resolve import median_residual_norm
from saedetox.steering.spec import TIER_FACTORS, Intervention, SteeringSpec
from saedetox.steering.steerer import Steerer

MODES = ["constant", "conditional", "token", "clamp"]
LATENTS = [1, 5, 7, 12]
PROMPTS = ["The library opens at nine in the morning", "She walked", "Our team spent the afternoon reviewing"]


def spec_for(sae_dir, mode, strength=2.0, threshold=0.05, **kw):
    iv = Intervention(sae=str(sae_dir), latents=LATENTS, mode=mode, strength=strength, threshold=threshold, **kw)
    return SteeringSpec([iv])


def manual_logits(lm, ids, layer, edit):
    """GPT-2 forward block by block (no hooks), with ``edit`` applied to resid_pre of ``layer``."""
    tr = lm.model.transformer
    h = tr.wte(ids) + tr.wpe(torch.arange(ids.shape[1]))[None]
    for i, block in enumerate(tr.h):
        if i == layer:
            h = edit(h)
        out = block(h)
        h = out[0] if isinstance(out, tuple) else out
    return lm.model.lm_head(tr.ln_f(h))


@torch.no_grad()
def test_constant_equals_independent_reference(gpt2, sae_dir):
    sae = load_sae(str(sae_dir), model_uses_layernorm=True)
    w = sae.sae.W_dec[LATENTS].double()
    v = -(2.0 * (w / w.norm(dim=-1, keepdim=True)).sum(0)).float()
    ids = tokenize_batch(gpt2.tokenizer, PROMPTS[:1])["input_ids"]
    ref = manual_logits(gpt2, ids, 1, lambda h: h + v)
    with Steerer(gpt2, spec_for(sae_dir, "constant")):
        got = gpt2.model(ids).logits
    assert torch.allclose(got, ref, atol=1e-5)
    assert not torch.allclose(got, gpt2.model(ids).logits, atol=1e-3)


@torch.no_grad()
def test_token_conditional_clamp_equal_reference(gpt2, sae_dir):
    sae = load_sae(str(sae_dir), model_uses_layernorm=True)
    u = sae.sae.W_dec[LATENTS] / sae.sae.W_dec[LATENTS].norm(dim=-1, keepdim=True)
    ids = tokenize_batch(gpt2.tokenizer, PROMPTS[:1])["input_ids"]

    not_bos = (ids != gpt2.tokenizer.bos_token_id).unsqueeze(-1)
    assert not not_bos[0, 0] and not_bos[0, 1:].all()

    def acts(h):  # SAE-Lens' own full encode, then select; BOS never opens a gate
        return sae.sae.encode(h)[..., LATENTS] * not_bos

    def token_edit(h):
        fire = (acts(h) > 0.05).float()
        return h - 2.0 * fire @ u

    def cond_edit(h):
        fire = (acts(h) > 0.05).any(-1).float()
        gate = torch.cummax(fire, dim=1).values.unsqueeze(-1)
        return h - 2.0 * gate * u.sum(0)

    def clamp_edit(h):
        a = sae.sae.encode(h)
        b = a.clone()
        b[..., LATENTS] = 0.0
        return h + sae.sae.decode(b) - sae.sae.decode(a)

    for mode, edit in (("token", token_edit), ("conditional", cond_edit), ("clamp", clamp_edit)):
        ref = manual_logits(gpt2, ids, 1, edit)
        with Steerer(gpt2, spec_for(sae_dir, mode)):
            got = gpt2.model(ids).logits
        assert torch.allclose(got, ref, atol=1e-4), mode
        assert not torch.allclose(got, gpt2.model(ids).logits, atol=1e-4), f"{mode} did nothing"


@pytest.mark.parametrize("mode", ["constant", "conditional", "token"])  # clamp has no strength
@torch.no_grad()
def test_alpha_zero_is_exactly_unsteered(gpt2, sae_dir, mode):
    enc = tokenize_batch(gpt2.tokenizer, PROMPTS, padding_side="left")
    base = gpt2.model(**enc).logits
    spec = spec_for(sae_dir, mode, strength=0.0)
    with Steerer(gpt2, spec):
        got = gpt2.model(**enc).logits
    assert torch.equal(got, base)


@pytest.mark.parametrize("mode", MODES)
@torch.no_grad()
def test_hooks_are_removed_after_with_block(gpt2, sae_dir, mode):
    enc = tokenize_batch(gpt2.tokenizer, PROMPTS, padding_side="left")
    before = gpt2.model(**enc).logits
    counts = [len(m._forward_pre_hooks) + len(m._forward_hooks) for m in gpt2.model.modules()]
    with Steerer(gpt2, spec_for(sae_dir, mode)):
        assert sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in gpt2.model.modules()) > sum(counts)
    assert [len(m._forward_pre_hooks) + len(m._forward_hooks) for m in gpt2.model.modules()] == counts
    assert torch.equal(gpt2.model(**enc).logits, before)


def _scores(lm, prompts, steerer, use_cache, n_new=6):
    """Greedy generation through ``lm.model.generate`` (what lm-eval and users call), steerer attached."""
    enc = tokenize_batch(lm.tokenizer, prompts, padding_side="left")
    with steerer:
        out = lm.model.generate(
            **enc,
            max_new_tokens=n_new,
            do_sample=False,
            use_cache=use_cache,
            output_logits=True,
            return_dict_in_generate=True,
            pad_token_id=lm.tokenizer.pad_token_id,
        )
    return out.sequences, torch.stack(out.logits, 1)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("positions", ["all", "generated"])
def test_cached_equals_uncached_generation(gpt2, sae_dir, mode, positions):
    st = Steerer(gpt2, spec_for(sae_dir, mode, positions=positions))
    seq_c, log_c = _scores(gpt2, PROMPTS, st, True)
    seq_u, log_u = _scores(gpt2, PROMPTS, st, False)
    assert torch.equal(seq_c, seq_u)
    assert torch.allclose(log_c, log_u, atol=1e-4)
    if mode in ("constant", "conditional"):  # the policy matters: layers after the hook read the prompt positions
        other = Steerer(gpt2, spec_for(sae_dir, mode, positions="all" if positions == "generated" else "generated"))
        assert not torch.allclose(log_c, _scores(gpt2, PROMPTS, other, False)[1], atol=1e-3)


@pytest.mark.parametrize("mode", MODES)
def test_batched_equals_one_by_one(gpt2, sae_dir, mode):
    st = Steerer(gpt2, spec_for(sae_dir, mode))
    seq_b, log_b = _scores(gpt2, PROMPTS, st, True)
    for i, p in enumerate(PROMPTS):
        seq_1, log_1 = _scores(gpt2, [p], st, True)
        n = seq_1.shape[1]
        assert torch.equal(seq_b[i, -n:], seq_1[0])
        assert torch.allclose(log_b[i], log_1[0], atol=1e-4)


@pytest.mark.parametrize("mode", MODES)
@torch.no_grad()
def test_left_pad_positions_are_untouched(gpt2, sae_dir, mode):
    enc = tokenize_batch(gpt2.tokenizer, PROMPTS, padding_side="left")
    seen = {}
    site = gpt2.site("blocks.1.hook_resid_pre")

    def read(m, a, k):
        seen["x"] = (a[0] if a else k["hidden_states"]).clone()

    # a reader registered after the steering hook sees the steered stream
    with Steerer(gpt2, spec_for(sae_dir, mode)):
        h = site.module.register_forward_pre_hook(read, with_kwargs=True)
        gpt2.model(**enc)
        h.remove()
    steered = seen.pop("x")
    h = site.module.register_forward_pre_hook(read, with_kwargs=True)
    gpt2.model(**enc)
    h.remove()
    plain = seen["x"]
    pad = enc["attention_mask"] == 0
    assert pad.any()
    assert torch.equal(steered[pad], plain[pad])
    assert not torch.equal(steered[~pad], plain[~pad])


@torch.no_grad()
def test_generated_policy_leaves_prompt_alone_only_while_generating(gpt2, sae_dir):
    enc = tokenize_batch(gpt2.tokenizer, PROMPTS[:1])
    base = gpt2.model(**enc).logits
    with Steerer(gpt2, spec_for(sae_dir, "constant", positions="generated")) as st:
        with st.generation(enc["input_ids"].shape[1]):
            got = gpt2.model(**enc).logits
        scored = gpt2.model(**enc).logits  # outside generation: scoring a text steers every position
    with Steerer(gpt2, spec_for(sae_dir, "constant", positions="all")):
        everywhere = gpt2.model(**enc).logits
    assert torch.equal(got[0, :-1], base[0, :-1])  # only the last prompt position (predicting token 1) moves
    assert not torch.allclose(got[0, -1], base[0, -1])
    assert torch.equal(scored, everywhere)
    assert not torch.allclose(scored[0, :-1], base[0, :-1])


def test_several_hooks_and_latents(tmp_path, gpt2):
    a = write_sae(tmp_path / "a", gpt2.d_model, hook="blocks.0.hook_resid_post", seed=1)
    b = write_sae(tmp_path / "b", gpt2.d_model, hook="blocks.2.hook_resid_pre", seed=2)
    spec = SteeringSpec(
        [
            Intervention(sae=str(a), latents=[0, 1, 2], strength=1.0),
            Intervention(sae=str(b), latents=[3], mode="token", strength=1.0),
        ]
    )
    ids = tokenize_batch(gpt2.tokenizer, PROMPTS[:1])["input_ids"]
    with Steerer(gpt2, spec) as st:
        both = gpt2.model(ids).logits
        assert [r.hook for r in st.resolved] == ["blocks.0.hook_resid_post", "blocks.2.hook_resid_pre"]
    with Steerer(gpt2, SteeringSpec(spec.interventions[:1])):
        one = gpt2.model(ids).logits
    assert not torch.allclose(both, one)


def test_tiers_scale_with_residual_norm(gpt2, sae_dir):
    med = median_residual_norm(gpt2, "blocks.1.hook_resid_pre")
    alphas = {}
    for tier in ("low", "medium", "high"):
        st = Steerer(gpt2, SteeringSpec([Intervention(sae=str(sae_dir), latents=LATENTS, tier=tier)]))
        r = st.resolved[0]
        alphas[tier] = r.alpha
        assert abs(float(r.vector.norm()) - TIER_FACTORS[tier] * med) < 1e-3 * med
    assert alphas["low"] < alphas["medium"] < alphas["high"]


@pytest.mark.parametrize("positions", ["all", "generated"])
def test_llama_steering_cached_equals_uncached(tmp_path, positions):
    # a middle layer, so that the layer after it reads steered earlier positions (RoPE, GQA)
    lm = tiny_llama(n_layer=3)
    d = write_sae(tmp_path / "s", lm.d_model, hook="blocks.1.hook_resid_post", arch="jumprelu")
    plain = _scores(lm, PROMPTS, Steerer(lm, SteeringSpec([Intervention(sae=str(d), latents=[1], strength=0.0)])), True)
    for mode in MODES:
        iv = Intervention(sae=str(d), latents=LATENTS, mode=mode, strength=3.0, threshold=0.01, positions=positions)
        st = Steerer(lm, SteeringSpec([iv]))
        seq_c, log_c = _scores(lm, PROMPTS, st, True)
        seq_u, log_u = _scores(lm, PROMPTS, st, False)
        assert torch.equal(seq_c, seq_u), mode
        assert torch.allclose(log_c, log_u, atol=1e-4), mode
        assert not torch.allclose(log_c, plain[1], atol=1e-3), f"{mode} did nothing"


def test_sampling_is_reproducible_and_steering_changes_it(gpt2, sae_dir):
    cfg = SamplingConfig(n_samples=3, max_new_tokens=5, batch_size=6, seed=1)
    a = sample(gpt2, PROMPTS, cfg)
    b = sample(gpt2, PROMPTS, cfg)
    assert [[s.token_ids for s in g] for g in a] == [[s.token_ids for s in g] for g in b]
    assert all(len(g) == 3 for g in a)
    c = sample(gpt2, PROMPTS, cfg, Steerer(gpt2, spec_for(sae_dir, "constant", strength=20.0)))
    assert [[s.token_ids for s in g] for g in a] != [[s.token_ids for s in g] for g in c]


def test_width_mismatch_and_bad_latents(tmp_path, gpt2):
    d = write_sae(tmp_path / "w", gpt2.d_model + 8)
    with pytest.raises(SaedetoxError, match="d_in"):
        Steerer(gpt2, SteeringSpec([Intervention(sae=str(d), latents=[1], strength=1.0)]))
    ok = write_sae(tmp_path / "ok", gpt2.d_model, d_sae=16)
    with pytest.raises(SaedetoxError, match="out of range"):
        Steerer(gpt2, SteeringSpec([Intervention(sae=str(ok), latents=[16], strength=1.0)]))
    with pytest.raises(SaedetoxError, match="layer 7"):
        Steerer(
            gpt2, SteeringSpec([Intervention(sae=str(ok), latents=[1], strength=1.0, hook="blocks.7.hook_resid_pre")])
        )


def test_nan_strength_rejected(sae_dir):
    with pytest.raises(SaedetoxError, match="finite"):
        SteeringSpec([Intervention(sae=str(sae_dir), latents=[1], strength=float("nan"))]).validate()
    with pytest.raises(SaedetoxError, match="finite"):
        SteeringSpec([Intervention(sae=str(sae_dir), latents=[1], strength=float("inf"))]).validate()


@pytest.mark.parametrize("mode", ["conditional", "token"])
@torch.no_grad()
def test_per_latent_gates(gpt2, sae_dir, mode):
    enc = tokenize_batch(gpt2.tokenizer, PROMPTS, padding_side="left")
    base = gpt2.model(**enc).logits
    closed = SteeringSpec(
        [Intervention(sae=str(sae_dir), latents=LATENTS, mode=mode, strength=3.0, thresholds=[1e9] * 4)]
    )
    with Steerer(gpt2, closed):
        assert torch.equal(gpt2.model(**enc).logits, base)  # no gate ever opens
    same = SteeringSpec(
        [Intervention(sae=str(sae_dir), latents=LATENTS, mode=mode, strength=3.0, thresholds=[0.05] * 4)]
    )
    scalar = spec_for(sae_dir, mode, strength=3.0, threshold=0.05)
    with Steerer(gpt2, same):
        a = gpt2.model(**enc).logits
    with Steerer(gpt2, scalar):
        b = gpt2.model(**enc).logits
    assert torch.equal(a, b) and not torch.allclose(a, base)
    with pytest.raises(SaedetoxError, match="thresholds"):
        Intervention(sae="s", latents=[1, 2], thresholds=[0.1]).validate()


def test_past_length_reads_every_transformers_convention():
    from transformers import DynamicCache

    from saedetox.steering.positions import past_length as _past_length

    mask = torch.ones(2, 9, dtype=torch.long)
    assert _past_length({"cache_position": torch.tensor([7])}, 1, mask) == 7
    cache = DynamicCache()
    cache.update(torch.zeros(2, 1, 5, 4), torch.zeros(2, 1, 5, 4), 0)
    assert _past_length({"past_key_values": cache}, 1, None) == 5
    assert _past_length({"cache": cache}, 1, None) == 5  # transformers >= 5.24
    assert _past_length({}, 1, mask) == 8  # attention-mask fallback
    assert _past_length({}, 9, mask) == 0
