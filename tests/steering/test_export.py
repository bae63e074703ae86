"""Folded export: a plain from_pretrained checkpoint equals the hooked model, and says how it was made."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from helpers import (
    tiny_gemma2,
    tiny_gpt2,
    tiny_llama,
    tiny_mistral,
    tiny_neox,
    tiny_opt,
    tiny_phi3,
    tiny_qwen2,
    write_sae,
)
from saedetox.errors import SaedetoxError
from saedetox.model.tokens import tokenize_batch
from saedetox.sae.load import load_sae
from saedetox.steering.export import export
from saedetox.steering.spec import Intervention, SteeringSpec
from saedetox.steering.steerer import Steerer

PROMPTS = ["The library opens at nine in the morning", "She walked"]


def check_folded(lm, out, spec):
    """The exported checkpoint's logits equal the hooked model's (and differ from the plain one's)."""
    from transformers import AutoModelForCausalLM

    plain = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    enc = tokenize_batch(lm.tokenizer, PROMPTS, padding_side="left")
    pos = (enc["attention_mask"].cumsum(-1) - 1).clamp_min(0)
    mask = enc["attention_mask"].bool()
    with torch.no_grad():
        with Steerer(lm, spec):
            hooked = lm.model(**enc, position_ids=pos).logits
        folded = plain(**enc, position_ids=pos).logits
        base = lm.model(**enc, position_ids=pos).logits
    assert torch.allclose(folded[mask], hooked[mask], atol=1e-4)
    assert not torch.allclose(folded[mask], base[mask], atol=1e-3)


def _check(lm, spec, out):
    export(lm, spec, out)
    check_folded(lm, out, spec)
    assert (out / "saedetox_export.json").exists()


@pytest.mark.parametrize(
    "factory,hooks",
    [
        (
            tiny_gpt2,
            [
                "blocks.0.hook_resid_pre",
                "blocks.2.hook_resid_pre",
                "blocks.2.hook_resid_post",
                "blocks.1.hook_attn_out",
                "blocks.1.hook_mlp_out",
            ],
        ),
        (tiny_neox, ["blocks.1.hook_resid_pre", "blocks.1.hook_resid_post", "blocks.0.hook_attn_out"]),
        (tiny_llama, ["blocks.1.hook_resid_pre", "blocks.0.hook_attn_out", "blocks.0.hook_resid_pre"]),
        (
            tiny_opt,
            [
                "blocks.0.hook_resid_pre",
                "blocks.1.hook_resid_pre",
                "blocks.0.hook_resid_post",
                "blocks.1.hook_attn_out",
            ],
        ),
        (
            lambda: tiny_opt(post_ln=True),
            [
                "blocks.0.hook_resid_pre",
                "blocks.1.hook_resid_pre",
                "blocks.1.hook_resid_post",
                "blocks.0.hook_attn_out",
            ],
        ),
        (tiny_gemma2, ["blocks.0.hook_resid_pre"]),
        (tiny_qwen2, ["blocks.0.hook_resid_pre"]),
        (tiny_mistral, ["blocks.0.hook_resid_pre"]),
        (tiny_phi3, ["blocks.0.hook_resid_pre"]),
    ],
    ids=["gpt2", "neox", "llama", "opt", "opt-postln", "gemma2", "qwen2", "mistral", "phi3"],
)
def test_folded_export_equals_hooked_model(tmp_path, factory, hooks):
    lm = factory()
    for i, hook in enumerate(hooks):
        d = write_sae(tmp_path / f"sae{i}", lm.d_model, hook=hook, seed=i)
        spec = SteeringSpec([Intervention(sae=str(d), latents=[1, 4, 9], strength=1.5)])
        _check(lm, spec, tmp_path / f"out{i}")


def test_several_hooks_fold_together(tmp_path):
    lm = tiny_gpt2()
    a = write_sae(tmp_path / "a", lm.d_model, hook="blocks.1.hook_resid_pre", seed=1)
    b = write_sae(tmp_path / "b", lm.d_model, hook="blocks.2.hook_resid_post", seed=2)
    spec = SteeringSpec(
        [Intervention(sae=str(a), latents=[1], strength=2.0), Intervention(sae=str(b), latents=[2, 3], tier="high")]
    )
    _check(lm, spec, tmp_path / "out")


@pytest.mark.parametrize("factory", [tiny_gemma2, tiny_qwen2, tiny_mistral, tiny_phi3], ids=lambda f: f.__name__)
def test_unfoldable_hooks_explain_why(tmp_path, factory):
    lm = factory()
    d = write_sae(tmp_path / "g", lm.d_model, hook="blocks.1.hook_resid_pre")
    with pytest.raises(SaedetoxError, match="cannot be folded exactly.*blocks.0.hook_resid_pre") as err:
        export(lm, SteeringSpec([Intervention(sae=str(d), latents=[1], strength=1.0)]), tmp_path / "o")
    assert "\n" not in str(err.value) and not (tmp_path / "o").exists()


def test_non_constant_modes_are_refused(tmp_path, gpt2):
    d2 = write_sae(tmp_path / "t", gpt2.d_model)
    for mode in ("token", "conditional", "clamp"):
        with pytest.raises(SaedetoxError, match="Only constant"):
            export(
                gpt2, SteeringSpec([Intervention(sae=str(d2), latents=[1], mode=mode, strength=1.0)]), tmp_path / "o"
            )
    with pytest.raises(SaedetoxError, match="Only constant"):
        export(
            gpt2,
            SteeringSpec([Intervention(sae=str(d2), latents=[1], strength=1.0, positions="generated")]),
            tmp_path / "o",
        )


def test_export_leaves_source_model_untouched(tmp_path, gpt2, sae_dir):
    before = {k: v.clone() for k, v in gpt2.model.state_dict().items()}
    export(gpt2, SteeringSpec([Intervention(sae=str(sae_dir), latents=[1], strength=3.0)]), tmp_path / "o")
    after = gpt2.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize(
    "factory,hook",
    [(tiny_gpt2, "blocks.2.hook_resid_pre"), (tiny_gemma2, "blocks.0.hook_resid_pre")],
    ids=["gpt2", "gemma2"],
)
def test_provenance_alone_recomputes_the_folded_vector(tmp_path, factory, hook):
    lm = factory()
    sae = write_sae(tmp_path / "sae", lm.d_model, hook=hook, seed=3)
    spec = SteeringSpec([Intervention(sae=str(sae), latents=[2, 5, 7], tier="medium")])
    export(lm, spec, tmp_path / "out")
    meta = json.loads((tmp_path / "out" / "saedetox_export.json").read_text())
    (iv,) = meta["interventions"]
    (folded,) = meta["folded"]
    assert meta["saedetox_version"] and meta["steering"] == spec.to_dict()
    assert iv["hook"] == hook and iv["latents"] == [2, 5, 7] and iv["sae"] == str(sae) and iv["median_norm"] > 0
    assert iv["sae_info"]["hook_name"] == hook
    # from the file alone (no recalibration): the SAE it names, the latents and alpha it records
    w = load_sae(iv["sae"]).sae.W_dec.detach()[iv["latents"]].float()
    shift = -iv["alpha"] * (w / w.norm(dim=-1, keepdim=True)).sum(0)
    new = load_file(tmp_path / "out" / "model.safetensors")[folded["parameter"]]
    old = lm.model.state_dict()[folded["parameter"]]
    diff = (new - old) * folded["divided_by"]  # a bias, or every embedding row moved by the same shift
    assert torch.allclose(diff, shift.expand_as(diff), atol=1e-5)
    assert iv["shift_norm"] == pytest.approx(float(shift.norm()), rel=1e-5)
