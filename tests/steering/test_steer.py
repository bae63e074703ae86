"""The notebook verbs: ``steer`` / ``steering_spec`` from features, latents, loaded SAEs or specs."""

from __future__ import annotations

import json

import pytest
import torch

from helpers import write_sae
from saedetox.discover.features import Features
from saedetox.errors import SaedetoxError
from saedetox.model.tokens import tokenize_batch
from saedetox.sae.load import load_sae
from saedetox.steering.spec import Intervention, SteeringSpec
from saedetox.steering.steer import steer, steering_spec
from saedetox.steering.steerer import Steerer

LATENTS = [1, 5, 7]
TEXT = ["The library opens at nine in the morning"]


def features(sae_dir, **extra) -> dict:
    return {"sae": str(sae_dir), "hook": "blocks.1.hook_resid_pre", "selected": LATENTS, **extra}


@torch.no_grad()
def logits(lm, ids):
    return lm.model(ids).logits


@torch.no_grad()
def test_steer_with_a_loaded_sae_equals_steering_by_name_and_detaches(gpt2, sae_dir):
    ids = tokenize_batch(gpt2.tokenizer, TEXT)["input_ids"]
    plain = logits(gpt2, ids)
    sae = load_sae(str(sae_dir), gpt2)
    with Steerer(gpt2, SteeringSpec([Intervention(sae=str(sae_dir), latents=LATENTS, tier="high")])):
        by_name = logits(gpt2, ids)
    with steer(gpt2, LATENTS, sae=sae, tier="high") as steerer:
        by_object = logits(gpt2, ids)
        assert steerer.resolved[0].sae is sae  # the object itself, not a second load
    assert torch.allclose(by_object, by_name, atol=1e-6)
    assert not torch.allclose(by_object, plain, atol=1e-3)
    assert torch.equal(logits(gpt2, ids), plain)  # hooks gone after the block


@torch.no_grad()
def test_steer_removes_its_hooks_when_the_block_raises(gpt2, sae_dir):
    ids = tokenize_batch(gpt2.tokenizer, TEXT)["input_ids"]
    plain = logits(gpt2, ids)
    with pytest.raises(RuntimeError, match="boom"), steer(gpt2, features(sae_dir)):
        raise RuntimeError("boom")
    assert torch.equal(logits(gpt2, ids), plain)


def test_spec_from_features_takes_its_sae_hook_gates_and_detector(sae_dir, tmp_path):
    det = {"kind": "latents", "coef": [1.0, 0.5, 0.2], "intercept": -1.0, "scale": [1.0, 1.0, 1.0], "pooling": "max"}
    feats = Features(features(sae_dir, thresholds=[0.1, 0.2, 0.3], detector=det))
    iv = steering_spec(feats, mode="conditional").interventions[0]
    assert iv.sae == str(sae_dir) and iv.latents == LATENTS and iv.hook is None  # the SAE's own, as the CLI
    assert iv.thresholds == [0.1, 0.2, 0.3] and iv.tier == "medium"  # discovery's gates; the default tier
    assert steering_spec(feats, mode="token").interventions[0].thresholds is None  # token mode: gate 0
    assert steering_spec(feats, mode="conditional", threshold=0.5).interventions[0].threshold == 0.5
    adaptive = steering_spec(feats, mode="adaptive", push=0.2).interventions[0]
    assert adaptive.detector["coef"] == det["coef"] and adaptive.push == 0.2 and adaptive.tier is None
    path = tmp_path / "features.json"
    path.write_text(json.dumps(feats))
    assert steering_spec(path, tier="low").interventions[0].latents == LATENTS  # a features.json path


def test_spec_refuses_unclear_input(sae_dir):
    with pytest.raises(SaedetoxError, match="sae="):
        steering_spec([1, 2])
    spec = SteeringSpec([Intervention(sae=str(sae_dir), latents=[1])])
    assert steering_spec(spec).interventions[0].tier == "medium"
    with pytest.raises(SaedetoxError, match="tier"):
        steering_spec(spec, tier="high")  # a spec already says how hard to push
    with pytest.raises(SaedetoxError, match="strength or a tier"):
        steering_spec([1], sae=str(sae_dir), tier="low", strength=2.0)


def test_loaded_sae_in_a_spec_is_saved_by_name(gpt2, tmp_path):
    d = write_sae(tmp_path / "s", gpt2.d_model)
    sae = load_sae(str(d), gpt2)
    spec = SteeringSpec([Intervention(sae=sae, latents=[2, 3])]).validate()
    assert spec.interventions[0].sae is sae
    spec.save(tmp_path / "spec.json")
    back = SteeringSpec.load(tmp_path / "spec.json")
    assert back.interventions[0].sae == str(d) and back.interventions[0].latents == [2, 3]
    with pytest.raises(SaedetoxError, match="SAE name or a loaded SAE"):
        Intervention(sae=3, latents=[1]).validate()  # type: ignore[arg-type]


@torch.no_grad()
def test_steering_by_name_loads_the_sae_with_the_models_conventions(gpt2, tmp_path):
    # the resolver used to load SAEs without the model, so an unknown input scale was never estimated
    # and steering by name encoded differently from load_sae(name, lm)
    d = write_sae(tmp_path / "e", gpt2.d_model, normalize_activations="expected_average_only_in")
    direct = load_sae(str(d), gpt2)
    with steer(gpt2, [0, 3], sae=str(d), mode="token", strength=1.0) as steerer:
        used = steerer.resolved[0].sae
    assert any("estimated" in n for n in used.notes)
    x = torch.randn(2, 5, gpt2.d_model)
    assert torch.allclose(used.encode(x), direct.encode(x), atol=1e-5)
