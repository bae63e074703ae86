"""Models researchers already hold: nnsight LanguageModel and TransformerBridge steer like the HF model inside;
a HookedTransformer is refused in one line."""

from __future__ import annotations

import warnings

import pytest
import torch

import saedetox as sd
from helpers import tiny_gpt2, write_sae
from saedetox.errors import SaedetoxError
from saedetox.model.load import as_loaded_model, load_model, reference_model_dir
from saedetox.model.tokens import tokenize_batch

PROMPTS = ["You are such a", "The weather today is"]


def nnsight_model(lm):
    import nnsight

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nnsight 0.8 announces a renamed class
        return nnsight.LanguageModel(lm.model, tokenizer=lm.tokenizer)


def bridge_model(lm, folder):
    """A TransformerBridge around an existing HF model, built offline from a folder holding its config."""
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoTokenizer

    lm.model.config.save_pretrained(folder)
    lm.tokenizer.save_pretrained(folder)
    tok = AutoTokenizer.from_pretrained(folder)  # TransformerLens reloads the tokenizer by its folder
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return TransformerBridge.boot_transformers(str(folder), hf_model=lm.model, tokenizer=tok, device="cpu")


def logits(lm, texts=PROMPTS) -> torch.Tensor:
    batch = tokenize_batch(lm.tokenizer, texts, device=lm.device)
    with torch.no_grad():
        return lm.model(**batch).logits


def steered_logits(model, sae_dir, hook: str, lm_for_logits=None) -> torch.Tensor:
    with sd.steer(model, [1, 4, 9], sae=str(sae_dir), strength=3.0, hook=hook):
        return logits(lm_for_logits or as_loaded_model(model))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("adapters")
    lm = tiny_gpt2()
    write_sae(root / "sae", lm.d_model, hook="blocks.1.hook_resid_pre")
    return root


@pytest.mark.parametrize("hook", ["blocks.1.hook_resid_pre", "blocks.1.hook_resid_post", "blocks.2.hook_mlp_out"])
@pytest.mark.parametrize("wrapper", ["nnsight", "bridge"])
def test_wrapped_tiny_gpt2_steers_like_the_hf_model(world, tmp_path, hook, wrapper):
    plain = tiny_gpt2()
    other = tiny_gpt2()  # the same weights, a separate object inside the wrapper
    wrapped = nnsight_model(other) if wrapper == "nnsight" else bridge_model(other, tmp_path / "cfg")
    want = steered_logits(plain, world / "sae", hook)
    unsteered = logits(plain)
    assert not torch.allclose(want, unsteered, atol=1e-4)  # the steering changes the logits
    got = steered_logits(wrapped, world / "sae", hook)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logits(as_loaded_model(wrapped)), unsteered, rtol=1e-5, atol=1e-5)  # hooks gone


def test_wrapper_gives_one_loaded_model_and_generation_matches(world, tmp_path):
    plain = tiny_gpt2()
    bridge = bridge_model(tiny_gpt2(), tmp_path / "cfg")
    assert as_loaded_model(bridge) is as_loaded_model(bridge)  # steering attached by one call is seen by the next
    assert sd.load_model(bridge) is as_loaded_model(bridge)
    kw = {"n_samples": 2, "max_new_tokens": 6, "seed": 3}
    with sd.steer(plain, [1, 4, 9], sae=str(world / "sae"), strength=3.0):
        want = [[s.token_ids for s in row] for row in sd.sample(plain, PROMPTS, **kw)]
    with sd.steer(bridge, [1, 4, 9], sae=str(world / "sae"), strength=3.0):
        got = [[s.token_ids for s in row] for row in sd.sample(bridge, PROMPTS, **kw)]
    assert got == want
    # the bridge itself is untouched: its own forward still gives the HF model's logits
    ids = tokenize_batch(plain.tokenizer, PROMPTS[:1])["input_ids"]
    with torch.no_grad():
        torch.testing.assert_close(bridge(ids), plain.model(ids).logits, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("wrapper", ["nnsight", "bridge"])
def test_wrapped_reference_lm_steers_like_the_hf_model(wrapper, tmp_path):
    from transformers import AutoTokenizer

    plain = load_model("reference", dtype="float32", device="cpu")
    if wrapper == "bridge":
        from transformer_lens.model_bridge import TransformerBridge

        other = load_model("reference", dtype="float32", device="cpu")

        tok = AutoTokenizer.from_pretrained(reference_model_dir())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wrapped = TransformerBridge.boot_transformers(
                str(reference_model_dir()), hf_model=other.model, tokenizer=tok, device="cpu"
            )
    else:  # loaded by folder name: nnsight keeps it on the meta device until it is dispatched
        import nnsight

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wrapped = nnsight.LanguageModel(
                str(reference_model_dir()),
                tokenizer=AutoTokenizer.from_pretrained(reference_model_dir()),
                dtype=torch.float32,
            )
    want = steered_logits(plain, "reference", "blocks.3.hook_resid_pre")
    assert not torch.allclose(want, logits(plain), atol=1e-4)
    got = steered_logits(wrapped, "reference", "blocks.3.hook_resid_pre")
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert as_loaded_model(wrapped).n_layers == plain.n_layers


def test_hooked_transformer_is_refused_in_one_line(world):
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(n_layers=1, d_model=16, n_ctx=16, d_head=4, d_vocab=50, act_fn="gelu")
    ht = HookedTransformer(cfg)
    for call in (
        lambda: sd.load_model(ht),
        lambda: sd.steer(ht, [1], sae=str(world / "sae")).__enter__(),
        lambda: sd.evaluate(ht, world / "run"),
        lambda: sd.discover(ht, str(world / "sae")),
    ):
        with pytest.raises(SaedetoxError) as err:
            call()
        msg = str(err.value)
        assert "\n" not in msg and "HookedTransformer" in msg and "TransformerBridge" in msg and "HF model" in msg
    assert not (world / "run").exists()


def test_other_objects_are_refused(world):
    with pytest.raises(SaedetoxError, match="Expected a model"):
        sd.load_model(object())
    with pytest.raises(SaedetoxError, match="Expected a model"):
        sd.sample(42, "Hi")
