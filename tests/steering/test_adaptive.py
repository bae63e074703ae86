"""Adaptive mode: the push scaled per position by a detector probability, against a hand computation."""

from __future__ import annotations

import pytest
import torch

from helpers import latent_detector
from saedetox.errors import SaedetoxError
from saedetox.model.tokens import tokenize_batch
from saedetox.sae.load import load_sae
from saedetox.steering.export import constant_shift
from saedetox.steering.spec import Intervention, SteeringSpec
from saedetox.steering.steerer import Steerer

LATENTS = [1, 5, 7, 12]
PROMPTS = ["The library opens at nine in the morning", "you stupid idiot, what the hell", "She walked"]
HOOK = "blocks.1.hook_resid_pre"


@pytest.fixture(scope="module", params=["max", "token"])
def detector(request, gpt2, sae_dir):
    return latent_detector(gpt2, sae_dir, LATENTS, request.param)


def adaptive(sae_dir, detector, strength=3.0, **kw):
    iv = Intervention(sae=str(sae_dir), latents=LATENTS, mode="adaptive", strength=strength, detector=detector, **kw)
    return SteeringSpec([iv])


def manual_logits(lm, ids, mask, edit):
    """GPT-2 forward block by block (no hooks), ``edit`` applied to resid_pre of block 1."""
    tr = lm.model.transformer
    pos = (mask.cumsum(-1) - 1).clamp_min(0)
    h = tr.wte(ids) + tr.wpe(pos)
    bias = torch.zeros(ids.shape[0], 1, ids.shape[1], ids.shape[1])
    causal = torch.ones(ids.shape[1], ids.shape[1], dtype=torch.bool).tril()
    bias = bias.masked_fill(~(causal & mask.bool()[:, None, None, :]), torch.finfo(torch.float32).min)
    for i, block in enumerate(tr.h):
        if i == 1:
            h = edit(h)
        out = block(h, attention_mask=bias)
        h = out[0] if isinstance(out, tuple) else out
    return lm.model.lm_head(tr.ln_f(h))


@torch.no_grad()
def test_adaptive_equals_hand_computation(gpt2, sae_dir, detector):
    sae = load_sae(str(sae_dir), model_uses_layernorm=True)
    u = sae.unit_directions(LATENTS)
    enc = tokenize_batch(gpt2.tokenizer, PROMPTS, padding_side="right")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    counts = (mask == 1) & (ids != gpt2.tokenizer.bos_token_id)
    coef, scale = torch.tensor(detector["coef"]), torch.tensor(detector["scale"])
    seen = {}

    def edit(h):
        e = sae.sae.encode(sae.prepare(h))[..., LATENTS].masked_fill(~counts.unsqueeze(-1), -1e9)
        if detector["pooling"] == "max":
            e = torch.cummax(e, dim=1).values
        p = torch.sigmoid((e / scale) @ coef + detector["intercept"]) * counts
        seen["p"] = p
        return h - 3.0 * p.unsqueeze(-1) * u.sum(0)

    ref = manual_logits(gpt2, ids, mask, edit)
    with Steerer(gpt2, adaptive(sae_dir, detector)):
        got = gpt2.model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp_min(0)).logits
    real = mask.bool()
    assert torch.allclose(got[real], ref[real], atol=1e-4)
    p = seen["p"][counts]
    assert float(p.max() - p.min()) > 0.05  # the scale really varies between positions


@pytest.mark.parametrize("use_cache", [True, False])
def test_adaptive_generation_cached_equals_uncached_and_records_scale(gpt2, sae_dir, detector, use_cache):
    enc = tokenize_batch(gpt2.tokenizer, PROMPTS, padding_side="left")
    runs = {}
    for cache in (True, False):
        st = Steerer(gpt2, adaptive(sae_dir, detector, positions="generated"))
        with st:
            out = gpt2.model.generate(
                **enc,
                max_new_tokens=5,
                min_new_tokens=5,
                do_sample=False,
                use_cache=cache,
                output_logits=True,
                return_dict_in_generate=True,
                pad_token_id=gpt2.tokenizer.pad_token_id,
            )
        runs[cache] = (out.sequences, torch.stack(out.logits, 1), st.stats()["interventions"][0])
    assert torch.equal(runs[True][0], runs[False][0])
    assert torch.allclose(runs[True][1], runs[False][1], atol=1e-4)
    row = runs[use_cache][2]
    assert 0 < row["mean_scale"] < 1
    assert row["effective_push"] == pytest.approx(row["nominal_push"] * row["mean_scale"], rel=1e-4)
    assert row["gate_open_in_prompt"] is not None and row["firing_rate"] is not None


def test_detector_validation_and_round_trip(tmp_path, sae_dir, detector):
    spec = adaptive(sae_dir, detector).validate()
    spec.save(tmp_path / "s.yaml")
    assert SteeringSpec.load(tmp_path / "s.yaml").to_dict() == spec.to_dict()
    bad = [
        ({"detector": None}, "needs a detector"),
        ({"detector": {**detector, "coef": [1.0]}}, "coef"),
        ({"detector": {**detector, "pooling": "mean"}}, "pooling"),
        ({"detector": {**detector, "kind": "oracle"}}, "kind"),
        ({"detector": {**detector, "scale": [0.0] * 4}}, "positive"),
        ({"detector": {**detector, "intercept": float("nan")}}, "intercept"),
        ({"detector": {**detector, "colour": 1}}, "colour"),
        ({"mode": "token"}, "adaptive mode only"),
    ]
    for kw, msg in bad:
        base = {"sae": "s", "latents": LATENTS, "mode": "adaptive", "detector": detector, **kw}
        with pytest.raises(SaedetoxError, match=msg):
            Intervention(**base).validate()
    with pytest.raises(SaedetoxError, match="projection"):
        Intervention(vector=[0.0, 1.0], hook=HOOK, mode="adaptive", detector=detector).validate()


def test_export_refuses_adaptive(gpt2, sae_dir, detector):
    with pytest.raises(SaedetoxError, match="constant steering"):
        constant_shift(gpt2, adaptive(sae_dir, detector))


@torch.no_grad()
def test_meandiff_adaptive_uses_its_own_projection_detector(gpt2):
    from helpers import CLEAN_TEXTS, TOXIC_TEXTS
    from saedetox.methods.contrast import ContrastData, max_projection
    from saedetox.methods.meandiff import meandiff_method

    data = ContrastData(TOXIC_TEXTS, CLEAN_TEXTS)
    m = meandiff_method(gpt2, HOOK, data, None, None, mode="adaptive", push=0.2)
    det = m.details["detector"]
    assert det["kind"] == "projection" and det["pooling"] == "max" and len(det["coef"]) == 1
    r = m.steerer.resolved[0]
    v = r.direction_sum.float()
    tox = max_projection(gpt2, TOXIC_TEXTS, HOOK, v)
    cln = max_projection(gpt2, CLEAN_TEXTS, HOOK, v)
    p = lambda e: torch.sigmoid(e / det["scale"][0] * det["coef"][0] + det["intercept"])  # noqa: E731
    assert float(p(tox).mean()) > float(p(cln).mean())  # the detector separates the contrast data it was fitted on
    assert r.needs_calibration and r.target_push == 0.2
    const = meandiff_method(gpt2, HOOK, data, "medium", None)
    assert torch.equal(const.steerer.resolved[0].direction_sum, r.direction_sum)  # same direction, same data
    with pytest.raises(SaedetoxError, match="constant and adaptive"):
        meandiff_method(gpt2, HOOK, data, "medium", None, mode="token")


@torch.no_grad()
def test_meandiff_detector_from_kept_tokens_equals_a_second_pass(gpt2, monkeypatch):
    from helpers import CLEAN_TEXTS, TOXIC_TEXTS
    from saedetox.methods import contrast
    from saedetox.methods.contrast import ContrastData, max_projection, max_projection_of, token_mean
    from saedetox.methods.meandiff import meandiff_method

    kept: list[torch.Tensor] = []
    mean = token_mean(gpt2, TOXIC_TEXTS, HOOK, keep=kept)
    assert torch.allclose(torch.cat(kept).mean(0), mean, atol=1e-5) and len(kept) == len(TOXIC_TEXTS)
    v = torch.randn(gpt2.d_model)
    assert torch.allclose(max_projection_of(kept, v), max_projection(gpt2, TOXIC_TEXTS, HOOK, v), atol=1e-4)
    one_pass = meandiff_method(
        gpt2, HOOK, ContrastData(TOXIC_TEXTS, CLEAN_TEXTS), None, None, mode="adaptive", push=0.2
    )
    monkeypatch.setattr(contrast, "TOKENS_BUDGET", 0)  # nothing kept: the detector takes a second pass
    data = ContrastData(TOXIC_TEXTS, CLEAN_TEXTS)
    two_pass = meandiff_method(gpt2, HOOK, data, None, None, mode="adaptive", push=0.2)
    assert not any(k[0] == "meandiff-tokens" for k in data.cache)
    a, b = one_pass.details["detector"], two_pass.details["detector"]
    assert a["coef"] == pytest.approx(b["coef"], rel=1e-4) and a["intercept"] == pytest.approx(b["intercept"], rel=1e-4)
