"""Model loading, hook resolution and activation capture, checked against TransformerLens."""

from __future__ import annotations

import pytest
import torch

from helpers import tiny_gemma2, tiny_gpt2, tiny_llama, tiny_neox, tiny_opt, tiny_phi3
from saedetox.errors import SaedetoxError
from saedetox.model.capture import capture, iter_activations
from saedetox.model.load import load_model
from saedetox.model.tokens import tokenize_batch

TEXTS = ["The library opens at nine in the morning.", "She walked to the station.", "Hello there, my friend"]


@pytest.mark.parametrize("factory", [tiny_gpt2, tiny_neox, tiny_llama, tiny_gemma2, tiny_phi3, tiny_opt])
def test_every_hook_kind_resolves(factory):
    lm = factory()
    names = lm.hook_names()
    if lm.family == "opt":  # fc1/fc2 sit on the decoder layer: no MLP sub-block module, so no hook_mlp_out
        assert len(names) == 3 * lm.n_layers and not any("mlp_out" in n for n in names)
        with pytest.raises(SaedetoxError, match="no MLP sub-block"):
            lm.site("blocks.0.hook_mlp_out")
    else:
        assert len(names) == 4 * lm.n_layers
    for layer in range(lm.n_layers):
        assert lm.site(f"blocks.{layer}.hook_resid_pre").when == "pre"
        assert lm.site(f"blocks.{layer}.hook_resid_post").when == "post"


def test_gemma2_sub_block_outputs_are_post_norms():
    lm = tiny_gemma2()
    assert lm.site("blocks.0.hook_attn_out").module is lm.layers[0].post_attention_layernorm
    assert lm.site("blocks.0.hook_mlp_out").module is lm.layers[0].post_feedforward_layernorm


@pytest.mark.parametrize(
    "hook", ["blocks.9.hook_resid_pre", "blocks.0.hook_resid_mid", "layers.0", "blocks.x.hook_resid_pre"]
)
def test_bad_hooks_fail_with_one_line(gpt2, hook):
    with pytest.raises(SaedetoxError) as err:
        gpt2.site(hook)
    assert "\n" not in str(err.value)


def _tl_gpt2(lm):
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformer_lens.pretrained.weight_conversions import convert_gpt2_weights

    c = lm.model.config
    cfg = HookedTransformerConfig(
        n_layers=c.n_layer,
        d_model=c.n_embd,
        n_heads=c.n_head,
        d_head=c.n_embd // c.n_head,
        d_mlp=4 * c.n_embd,
        d_vocab=c.vocab_size,
        n_ctx=c.n_positions,
        act_fn="gelu_new",
        normalization_type="LN",
        default_prepend_bos=False,
    )
    tl = HookedTransformer(cfg)
    tl.load_and_process_state_dict(convert_gpt2_weights(lm.model, cfg), fold_ln=True, center_writing_weights=True)
    return tl.eval()


def _tl_from(lm, convert, **extra):
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    c = lm.model.config
    cfg = HookedTransformerConfig(
        n_layers=c.num_hidden_layers,
        d_model=c.hidden_size,
        n_heads=c.num_attention_heads,
        d_head=getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads,
        d_mlp=c.intermediate_size,
        d_vocab=c.vocab_size,
        n_ctx=c.max_position_embeddings,
        normalization_type="RMS",
        n_key_value_heads=c.num_key_value_heads,
        positional_embedding_type="rotary",
        rotary_dim=getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads,
        eps=c.rms_norm_eps,
        default_prepend_bos=False,
        **extra,
    )
    tl = HookedTransformer(cfg)
    tl.load_and_process_state_dict(convert(lm.model, cfg), fold_ln=True, center_writing_weights=True)
    return tl.eval()


@torch.no_grad()
def test_gpt2_centred_hf_activations_equal_transformer_lens(gpt2):
    tl = _tl_gpt2(gpt2)
    ids = tokenize_batch(gpt2.tokenizer, TEXTS[:1])["input_ids"]
    _, cache = tl.run_with_cache(ids)
    hooks = [f"blocks.{i}.hook_resid_{k}" for i in range(gpt2.n_layers) for k in ("pre", "post")]
    for acts, _, _ in iter_activations(gpt2, TEXTS[:1], hooks):
        for hook in hooks:
            hf = acts[hook][0]
            hf_c = hf - hf.mean(-1, keepdim=True)
            assert torch.allclose(hf_c, cache[hook][0], atol=1e-5), hook
            assert not torch.allclose(hf, cache[hook][0], atol=1e-3), "raw HF activations are not centred"
    # the last block's resid_post is before ln_f, unlike HF hidden_states[-1]
    last = f"blocks.{gpt2.n_layers - 1}.hook_resid_post"
    hs = gpt2.model(ids, output_hidden_states=True).hidden_states[-1][0]
    assert not torch.allclose(hs - hs.mean(-1, keepdim=True), cache[last][0], atol=1e-3)


@torch.no_grad()
def test_llama_raw_hf_activations_equal_transformer_lens():
    from transformer_lens.pretrained.weight_conversions import convert_llama_weights

    lm = tiny_llama()
    tl = _tl_from(lm, convert_llama_weights, act_fn="silu", gated_mlp=True, final_rms=True)
    ids = tokenize_batch(lm.tokenizer, TEXTS[:1])["input_ids"]
    _, cache = tl.run_with_cache(ids)
    hooks = [f"blocks.{i}.hook_resid_{k}" for i in range(lm.n_layers) for k in ("pre", "post")]
    for acts, _, _ in iter_activations(lm, TEXTS[:1], hooks):
        for hook in hooks:
            assert torch.allclose(acts[hook][0], cache[hook][0], atol=1e-4), hook


@pytest.mark.parametrize("factory", [tiny_gpt2, tiny_llama])
def test_capture_is_padding_invariant(factory):
    lm = factory()
    hook = "blocks.1.hook_resid_post"
    batched = capture(lm, TEXTS, hook, batch_size=3)
    single = [capture(lm, [t], hook)[0] for t in TEXTS]
    for b, s in zip(batched, single, strict=True):
        assert b.shape == s.shape
        assert torch.allclose(b, s, atol=1e-5)


def test_left_padded_forward_matches_single(gpt2):
    enc = tokenize_batch(gpt2.tokenizer, TEXTS, padding_side="left")
    pos = (enc["attention_mask"].cumsum(-1) - 1).clamp_min(0)
    logits = gpt2.model(**enc, position_ids=pos).logits
    for i, t in enumerate(TEXTS):
        one = gpt2.model(**tokenize_batch(gpt2.tokenizer, [t])).logits[0, -1]
        assert torch.allclose(logits[i, -1], one, atol=1e-4)


def test_tokenize_prepends_bos_once(gpt2):
    ids = tokenize_batch(gpt2.tokenizer, ["hello"], prepend_bos=True)["input_ids"][0]
    assert int(ids[0]) == gpt2.tokenizer.bos_token_id and int(ids[1]) != gpt2.tokenizer.bos_token_id
    with pytest.raises(SaedetoxError):
        tokenize_batch(gpt2.tokenizer, ["  "])


def test_load_model_local_dir_and_errors(tmp_path, gpt2):
    gpt2.model.save_pretrained(tmp_path / "m")
    gpt2.tokenizer.save_pretrained(tmp_path / "m")
    lm = load_model(str(tmp_path / "m"), dtype="float32", device="cpu")
    assert lm.n_layers == gpt2.n_layers and lm.family == "gpt2"
    with pytest.raises(SaedetoxError, match="does not exist"):
        load_model(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SaedetoxError, match="no config.json"):
        load_model(str(tmp_path / "empty"))
    with pytest.raises(SaedetoxError, match="local directory"):
        load_model("some-org/not-a-real-model-xyz")
    with pytest.raises(SaedetoxError, match="dtype"):
        load_model(str(tmp_path / "m"), dtype="float8")
