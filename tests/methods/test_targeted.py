"""sae-targeted: the closed-form direction against numpy's least squares, and against raw SAE steering."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from helpers import write_sae
from saedetox.data.calibration import CALIBRATION_TEXTS
from saedetox.errors import SaedetoxError
from saedetox.methods.registry import build_method, get_method
from saedetox.methods.targeted import TargetedConfig, clean_firing_rates, solve_direction
from saedetox.model.capture import capture
from saedetox.model.tokens import tokenize_batch
from saedetox.sae.load import load_sae
from saedetox.steering.spec import Intervention, SteeringSpec
from saedetox.steering.steerer import Steerer

LATENTS = [1, 5, 7, 12]
PROMPTS = ["The library opens at nine in the morning", "you stupid idiot, what the hell", "She walked"]


def lstsq_direction(enc, targets, raw, rates, cfg):
    """The same objective written as one stacked least-squares problem, solved by numpy."""
    enc, raw, rates = enc.double().numpy(), raw.double().numpy(), rates.double().numpy()
    clean = [j for j in range(enc.shape[1]) if rates[j] >= cfg.min_rate and j not in targets]
    e_s, e_c = enc[:, targets], enc[:, clean]
    lam = cfg.ridge * np.mean((e_s**2).sum(0))
    a = np.vstack([e_s.T, np.sqrt(cfg.clean_weight * rates[clean])[:, None] * e_c.T, np.sqrt(lam) * np.eye(len(raw))])
    b = np.concatenate([np.linalg.norm(e_s, axis=0), np.zeros(len(clean) + len(raw))])
    v = np.linalg.lstsq(a, b, rcond=None)[0]
    return v / np.linalg.norm(v), clean


def test_hand_built_case():
    # d = 3: target latent 0 reads x0 + x1, clean latent 1 reads x1 (active on half the clean tokens),
    # latent 2 reads x2 and is never active on clean text. The raw decoder direction (1, 1, 0)/√2 lowers
    # latent 0 but also latent 1; with a heavy clean weight the answer lowers latent 0 by ‖e_0‖ = √2
    # and leaves latent 1 alone: v = (√2, 0, 0), unit (1, 0, 0).
    enc = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    raw = torch.tensor([1.0, 1.0, 0.0]) / 2**0.5
    rates = torch.tensor([0.9, 0.5, 0.0])
    sol = solve_direction(enc, [0], raw, rates, TargetedConfig(clean_weight=1e4, ridge=1e-8))
    assert sol.clean_latents == [1]
    assert torch.allclose(sol.direction, torch.tensor([1.0, 0.0, 0.0]), atol=1e-3)
    assert sol.clean_change < 1e-3 < sol.raw_clean_change
    assert sol.target_drop[0] == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("cfg", [TargetedConfig(), TargetedConfig(clean_weight=0.1, ridge=0.05, min_rate=0.2)])
def test_solution_equals_numpy_least_squares(cfg):
    g = torch.Generator().manual_seed(3)
    enc = torch.randn(8, 40, generator=g)
    raw = torch.randn(8, generator=g)
    rates = torch.rand(40, generator=g) * 0.5
    sol = solve_direction(enc, [2, 9, 30], raw, rates, cfg)
    want, clean = lstsq_direction(enc, [2, 9, 30], raw, rates, cfg)
    assert sol.clean_latents == clean
    assert np.allclose(sol.direction.numpy(), want, atol=1e-5)


def _spec(sae_dir, **kw):
    return SteeringSpec([Intervention(sae=str(sae_dir), latents=LATENTS, **kw)])


@torch.no_grad()
@pytest.mark.parametrize("center", [False, True])
def test_lowers_targets_and_moves_clean_latents_less_than_raw_steering(tmp_path, gpt2, sae_dir, center):
    if center:  # an SAE trained on centred activations: the steering shift is centred before it is read
        sae_dir = write_sae(tmp_path / "centred", gpt2.d_model, d_sae=64, center=True, seed=1)
    sae = load_sae(str(sae_dir), model_uses_layernorm=gpt2.uses_layernorm)
    assert sae.center == center
    m = build_method(gpt2, "sae-targeted", _spec(sae_dir, push=0.3))
    raw = build_method(gpt2, "sae", _spec(sae_dir, push=0.3))
    shift, raw_shift = m.steerer.resolved[0].vector, raw.steerer.resolved[0].vector
    assert float(shift.norm()) == pytest.approx(float(raw_shift.norm()), rel=1e-5)  # the same push
    # clean firing rates computed here from the SAE's own encoding of the calibration text
    x = torch.cat([a[1:] for a in capture(gpt2, list(CALIBRATION_TEXTS), sae.hook_name, prepend_bos=True)])
    rates = (sae.sae.encode(sae.prepare(x)) > 0).float().mean(0)
    assert torch.allclose(rates, clean_firing_rates(gpt2, sae, sae.hook_name), atol=1e-6)
    clean = [j for j in range(sae.d_sae) if rates[j] >= 0.01 and j not in LATENTS]

    def pre(s):  # each latent's pre-activation change when the shift s is added to the input
        def hidden(y):
            return sae.sae.process_sae_in(sae.prepare(y)) @ sae.sae.W_enc + sae.sae.b_enc

        return hidden(x + s) - hidden(x)

    d, d_raw = pre(shift).mean(0), pre(raw_shift).mean(0)
    assert (d[LATENTS] < 0).all()  # every target goes down
    assert float(d[LATENTS].sum()) < float(d_raw[LATENTS].sum())  # more than under raw decoder steering
    # and the clean-active latents move less (weighted by how often they fire on clean text)
    side = float((d[clean] ** 2 * rates[clean]).sum().sqrt())
    side_raw = float((d_raw[clean] ** 2 * rates[clean]).sum().sqrt())
    assert side < 0.5 * side_raw
    assert m.details["targeted"]["clean_change"] < m.details["targeted"]["raw_clean_change"]


@torch.no_grad()
@pytest.mark.parametrize("mode", ["constant", "conditional"])
def test_alpha_zero_is_unsteered(gpt2, sae_dir, mode):
    enc = tokenize_batch(gpt2.tokenizer, PROMPTS, padding_side="left")
    pos = (enc["attention_mask"].cumsum(-1) - 1).clamp_min(0)
    base = gpt2.model(**enc, position_ids=pos).logits
    m = build_method(gpt2, "sae-targeted", _spec(sae_dir, strength=0.0, mode=mode, threshold=-1e9))
    with m.context():
        got = gpt2.model(**enc, position_ids=pos).logits
    assert torch.equal(got, base)


@torch.no_grad()
def test_conditional_uses_the_sae_gate(gpt2, sae_dir):
    """Shut gate: unsteered; gate open from the first real token: the constant shift after BOS."""
    enc = tokenize_batch(gpt2.tokenizer, PROMPTS, padding_side="right")
    pos = (enc["attention_mask"].cumsum(-1) - 1).clamp_min(0)
    real = enc["attention_mask"].bool()
    base = gpt2.model(**enc, position_ids=pos).logits
    shut = build_method(gpt2, "sae-targeted", _spec(sae_dir, strength=4.0, mode="conditional", threshold=1e9))
    with shut.context():
        assert torch.equal(gpt2.model(**enc, position_ids=pos).logits, base)
    opened = build_method(gpt2, "sae-targeted", _spec(sae_dir, strength=4.0, mode="conditional", threshold=-1e9))
    const = build_method(gpt2, "sae-targeted", _spec(sae_dir, strength=4.0, mode="constant"))
    with opened.context():
        gated = gpt2.model(**enc, position_ids=pos).logits
    with const.context():
        steady = gpt2.model(**enc, position_ids=pos).logits
    # BOS never opens the gate, so position 0 is unsteered; then every later position sees the shift,
    # but the attention to the unsteered BOS differs from constant steering's: compare position 0 only
    assert torch.allclose(gated[:, 0], base[:, 0], atol=1e-5)
    assert not torch.allclose(gated[real], base[real], atol=1e-3)
    assert not torch.allclose(steady[:, 0], base[:, 0], atol=1e-3)


def test_folded_export_equals_the_hooked_model(tmp_path, gpt2, sae_dir):
    from transformers import AutoModelForCausalLM

    spec = _spec(sae_dir, push=0.3)
    out = get_method("sae-targeted").export(gpt2, tmp_path / "out", spec=spec)
    meta = json.loads((out / "saedetox_export.json").read_text())
    (iv,) = meta["interventions"]
    assert iv["vector_source"] == "raw vector (sae-targeted)" and iv["sae"] == str(sae_dir)
    assert meta["vector_provenance"]["method"] == "sae-targeted"
    plain = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    enc = tokenize_batch(gpt2.tokenizer, PROMPTS, padding_side="left")
    pos = (enc["attention_mask"].cumsum(-1) - 1).clamp_min(0)
    mask = enc["attention_mask"].bool()
    with torch.no_grad():
        with Steerer(gpt2, build_method(gpt2, "sae-targeted", spec).steerer.spec):
            hooked = gpt2.model(**enc, position_ids=pos).logits
        folded = plain(**enc, position_ids=pos).logits
        base = gpt2.model(**enc, position_ids=pos).logits
    assert torch.allclose(folded[mask], hooked[mask], atol=1e-4)
    assert not torch.allclose(folded[mask], base[mask], atol=1e-3)


def test_refusals(gpt2, sae_dir):
    with pytest.raises(SaedetoxError, match="modes"):
        build_method(gpt2, "sae-targeted", _spec(sae_dir, mode="token"))
    with pytest.raises(SaedetoxError, match="not a raw vector"):
        vec = SteeringSpec([Intervention(vector=[1.0] * gpt2.d_model, hook="blocks.1.hook_resid_pre")])
        build_method(gpt2, "sae-targeted", vec)
    with pytest.raises(SaedetoxError, match="ridge"):
        solve_direction(torch.eye(2), [0], torch.ones(2), torch.zeros(2), TargetedConfig(ridge=0.0))
