"""Folded export: a plain from_pretrained checkpoint equals the hooked model."""

from __future__ import annotations

import pytest
import torch

from helpers import tiny_gemma2, tiny_gpt2, tiny_llama, tiny_neox, write_sae
from saedetox.errors import SaedetoxError
from saedetox.model.tokens import tokenize_batch
from saedetox.steering.export import export
from saedetox.steering.spec import Intervention, SteeringSpec
from saedetox.steering.steerer import Steerer

PROMPTS = ["The library opens at nine in the morning", "She walked"]


def _check(lm, spec, out):
    from transformers import AutoModelForCausalLM

    export(lm, spec, out)
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
        (tiny_gemma2, ["blocks.0.hook_resid_pre"]),
    ],
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


def test_unfoldable_cases_explain_why(tmp_path):
    lm = tiny_gemma2()
    d = write_sae(tmp_path / "g", lm.d_model, hook="blocks.1.hook_resid_pre")
    with pytest.raises(SaedetoxError, match="blocks.0.hook_resid_pre"):
        export(lm, SteeringSpec([Intervention(sae=str(d), latents=[1], strength=1.0)]), tmp_path / "o")
    g = tiny_gpt2()
    d2 = write_sae(tmp_path / "t", g.d_model)
    for mode in ("token", "conditional", "clamp"):
        with pytest.raises(SaedetoxError, match="Only constant"):
            export(g, SteeringSpec([Intervention(sae=str(d2), latents=[1], mode=mode, strength=1.0)]), tmp_path / "o")
    with pytest.raises(SaedetoxError, match="Only constant"):
        export(
            g,
            SteeringSpec([Intervention(sae=str(d2), latents=[1], strength=1.0, positions="generated")]),
            tmp_path / "o",
        )


def test_export_leaves_source_model_untouched(tmp_path, gpt2, sae_dir):
    before = {k: v.clone() for k, v in gpt2.model.state_dict().items()}
    export(gpt2, SteeringSpec([Intervention(sae=str(sae_dir), latents=[1], strength=3.0)]), tmp_path / "o")
    after = gpt2.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
