"""Generation vs scoring semantics, and what a Steerer records while generating (effective push, gates)."""

from __future__ import annotations

import pytest
import torch

from saedetox.eval.sampler.sampling import SamplingConfig, sample
from saedetox.model.tokens import tokenize_batch
from saedetox.sae.load import load_sae
from saedetox.steering.resolve import median_residual_norm
from saedetox.steering.spec import Intervention, SteeringSpec
from saedetox.steering.steerer import Steerer

LATENTS = [1, 5, 7, 12]
PROMPTS = ["The library opens at nine in the morning", "She walked", "Our team spent the afternoon reviewing"]
HOOK = "blocks.1.hook_resid_pre"
N_NEW = 5


def steerer(lm, sae_dir, mode="constant", **kw):
    kw.setdefault("strength", 2.0)
    return Steerer(lm, SteeringSpec([Intervention(sae=str(sae_dir), latents=LATENTS, mode=mode, **kw)]))


def greedy(lm, st, prompts=PROMPTS, use_cache=True, n_new=N_NEW):
    """Greedy generation through ``lm.model.generate``, no EOS before ``n_new`` tokens; returns (enc, sequences)."""
    enc = tokenize_batch(lm.tokenizer, prompts, padding_side="left")
    with st:
        out = lm.model.generate(
            **enc,
            max_new_tokens=n_new,
            min_new_tokens=n_new,
            do_sample=False,
            use_cache=use_cache,
            pad_token_id=lm.tokenizer.pad_token_id,
        )
    return enc, out


@torch.no_grad()
def replay(lm, enc, seqs, st):
    """Activations at the hook before the edit, scoring the generated sequences with ``st`` attached.

    Steering with policy ``all`` is causal, so scoring the finished sequences reproduces
    generation's hidden states; a reader registered before the steerer sees x before its edit.
    """
    mask = torch.cat([enc["attention_mask"], torch.ones_like(seqs[:, enc["input_ids"].shape[1] :])], 1)
    seen = {}
    handle = lm.site(HOOK).module.register_forward_pre_hook(
        lambda m, a, k: seen.__setitem__("x", (a[0] if a else k["hidden_states"]).clone()), with_kwargs=True
    )
    try:
        with st:
            lm.model(input_ids=seqs, attention_mask=mask)
    finally:
        handle.remove()
    return seen["x"]


def test_generate_is_wrapped_only_while_attached(gpt2, sae_dir):
    st = steerer(gpt2, sae_dir, positions="generated")
    assert "generate" not in gpt2.model.__dict__
    with st:
        assert "generate" in gpt2.model.__dict__
    assert "generate" not in gpt2.model.__dict__


def test_direct_generate_counts_as_generation(gpt2, sae_dir):
    """``lm.model.generate`` (users, lm-eval) == the sampler's explicit generation context."""
    st = steerer(gpt2, sae_dir, positions="generated")
    enc, wrapped = greedy(gpt2, st)
    width = enc["input_ids"].shape[1]
    with st, st.generation(width):
        explicit = gpt2.model.generate(
            **enc, max_new_tokens=N_NEW, min_new_tokens=N_NEW, do_sample=False, pad_token_id=gpt2.tokenizer.pad_token_id
        )
    assert torch.equal(wrapped, explicit)
    assert st.stats()["interventions"][0]["generated_positions"] == 2 * len(PROMPTS) * N_NEW


def test_constant_effective_push_equals_nominal(gpt2, sae_dir):
    st = steerer(gpt2, sae_dir, strength=None, tier="medium")
    greedy(gpt2, st)
    row = st.stats()["interventions"][0]
    assert row["generated_positions"] == len(PROMPTS) * N_NEW  # prompt width − 1 … the last input, per row
    assert row["effective_push"] == pytest.approx(row["nominal_push"], rel=1e-5)
    assert row["nominal_push"] == pytest.approx(0.25, rel=1e-5)
    assert st.stats()["effective_push"] == row["effective_push"]
    st.reset_stats()
    assert st.stats()["effective_push"] is None


@torch.no_grad()
def test_scoring_records_nothing(gpt2, sae_dir):
    st = steerer(gpt2, sae_dir, "token", threshold=0.05)
    enc = tokenize_batch(gpt2.tokenizer, PROMPTS, padding_side="left")
    with st:
        gpt2.model(**enc)
    assert st.stats()["effective_push"] is None and st.stats()["interventions"][0]["generated_positions"] == 0


@pytest.mark.parametrize("use_cache", [True, False])
def test_token_push_matches_an_independent_replay(gpt2, sae_dir, use_cache):
    st = steerer(gpt2, sae_dir, "token", threshold=0.05)
    enc, seqs = greedy(gpt2, st, use_cache=use_cache)
    row = st.stats()["interventions"][0]
    x = replay(gpt2, enc, seqs, steerer(gpt2, sae_dir, "token", threshold=0.05))
    sae = load_sae(str(sae_dir), model_uses_layernorm=True)
    u = sae.unit_directions(LATENTS)
    fires = (sae.sae.encode(x)[..., LATENTS] > 0.05).float()
    fires[seqs == gpt2.tokenizer.bos_token_id] = 0.0  # BOS never opens a gate (incl. left pad = BOS here)
    push = (2.0 * fires @ u).norm(dim=-1)  # [B, T]
    width = enc["input_ids"].shape[1]
    gen = push[:, width - 1 : width - 1 + N_NEW]
    median = median_residual_norm(gpt2, HOOK)
    assert row["effective_push"] == pytest.approx(float(gen.mean()) / median, rel=1e-4)
    assert row["firing_rate"] == pytest.approx(
        float((fires[:, width - 1 : width - 1 + N_NEW] > 0).any(-1).float().mean())
    )
    assert row["effective_push"] < row["nominal_push"]  # token mode pushes only the latents that fire
    assert row["median_norm"] == pytest.approx(median)  # measured lazily for a raw strength, hooks bypassed


def test_conditional_gate_open_in_prompt_matches_reference(gpt2, sae_dir):
    sae = load_sae(str(sae_dir), model_uses_layernorm=True)
    enc = tokenize_batch(gpt2.tokenizer, PROMPTS, padding_side="left")
    with torch.no_grad():
        x = {}
        h = gpt2.site(HOOK).module.register_forward_pre_hook(
            lambda m, a, k: x.__setitem__("x", a[0] if a else k["hidden_states"]), with_kwargs=True
        )
        gpt2.model(**enc)
        h.remove()
        acts = sae.sae.encode(x["x"])[..., LATENTS]
    real = (enc["attention_mask"] == 1) & (enc["input_ids"] != gpt2.tokenizer.bos_token_id)
    per_row = (acts * real.unsqueeze(-1)).amax((1, 2))
    low, high = per_row.sort().values[:2]
    tau = float(low + high) / 2  # opens inside some prompts, not others
    expected = float((per_row > tau).float().mean())
    assert 0 < expected < 1
    st = steerer(gpt2, sae_dir, "conditional", threshold=tau)
    greedy(gpt2, st, use_cache=False)
    row = st.stats()["interventions"][0]
    assert row["gate_open_in_prompt"] == pytest.approx(expected)
    assert row["firing_rate"] >= expected - 1e-6  # a gate open in the prompt stays open over the generated positions


@torch.no_grad()
def test_bos_never_opens_a_gate(gpt2, sae_dir, tmp_path):
    """Latent 0 rebuilt to fire on BOS alone: conditional and token steering must leave every position alone."""
    enc = tokenize_batch(gpt2.tokenizer, PROMPTS[:1])
    x = {}
    h = gpt2.site(HOOK).module.register_forward_pre_hook(
        lambda m, a, k: x.__setitem__("x", a[0] if a else k["hidden_states"]), with_kwargs=True
    )
    base = gpt2.model(**enc).logits
    h.remove()
    sae = load_sae(str(sae_dir), model_uses_layernorm=True)
    z = sae.sae.process_sae_in(sae.prepare(x["x"][0]))  # [T, d]: what the encoder sees
    target = torch.zeros(z.shape[0])
    target[0] = 1.0  # position 0 is BOS
    w = torch.linalg.lstsq(z.double(), target.double().unsqueeze(-1)).solution.squeeze(-1).float()
    sae.sae.W_enc[:, 0] = w
    sae.sae.b_enc[0] = -0.5  # a_0 = relu(w·z − ½): ½ at BOS, 0 elsewhere
    sae.sae.save_model(tmp_path / "bos")
    assert sae.encode(x["x"][0])[:, 0].tolist()[0] > 0.4 and sae.encode(x["x"][0])[1:, 0].max() == 0
    for mode in ("conditional", "token"):
        iv = Intervention(sae=str(tmp_path / "bos"), latents=[0], mode=mode, strength=5.0, threshold=0.0)
        with Steerer(gpt2, SteeringSpec([iv])):
            assert torch.equal(gpt2.model(**enc).logits, base), mode


def test_sampler_records_every_generated_position(gpt2, sae_dir):
    cfg = SamplingConfig(n_samples=2, max_new_tokens=6, batch_size=4, seed=3)
    st = steerer(gpt2, sae_dir, strength=None, tier="low")
    out = sample(gpt2, PROMPTS, cfg, st)
    expected = sum(min(len(s.token_ids) + 1, cfg.max_new_tokens) for group in out for s in group)
    row = st.stats()["interventions"][0]
    assert row["generated_positions"] == expected  # up to and including the position that predicts EOS
    assert row["effective_push"] == pytest.approx(0.125, rel=1e-5)
