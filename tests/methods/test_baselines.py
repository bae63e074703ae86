"""Each baseline's mechanism, proven on a tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from saedetox.methods.aura import aura_factors, aura_hooks, neuron_pooled
from saedetox.methods.contrast import ContrastData
from saedetox.methods.meandiff import meandiff_direction
from saedetox.methods.prompt import POLITE_PREFIX
from saedetox.methods.registry import build_baseline
from saedetox.model.arch import mlp_in_weights, mlp_out_projection
from saedetox.model.capture import capture
from saedetox.model.tokens import tokenize_batch
from saedetox.steering.resolve import median_residual_norm
from saedetox.steering.spec import TIER_FACTORS

TOXIC = ["you stupid idiot, shut up", "what a damn fool you are", "shut up you fucking moron", "go to hell, idiot"] * 2
CLEAN = ["you are a kind person, thanks", "what a lovely day it is", "please be quiet, my friend", "go to the park"] * 2
DATA = ContrastData(TOXIC, CLEAN)
HOOK = "blocks.1.hook_resid_pre"


def test_prompt_prefix_conditions_generation_only(tmp_path, gpt2):
    from saedetox.data.readers import Prompt
    from saedetox.eval.run import generate_all
    from saedetox.eval.sampling import SamplingConfig

    m = build_baseline(gpt2, "prompt")
    assert m.prefix == POLITE_PREFIX
    seen = []
    h = gpt2.model.register_forward_pre_hook(lambda mod, a, k: seen.append(k["input_ids"].clone()), with_kwargs=True)
    try:
        sampling = SamplingConfig(n_samples=1, max_new_tokens=2, do_sample=False)
        generate_all(gpt2, [Prompt("She walked")], m, sampling, tmp_path)
    finally:
        h.remove()
    text = gpt2.tokenizer.decode(seen[0][0])
    assert POLITE_PREFIX.strip() in text and text.rstrip().endswith("She walked")
    row = (tmp_path / "generations.jsonl").read_text()
    assert '"prompt": "She walked"' in row and "polite" not in row


def test_meandiff_direction_and_strength(gpt2):
    v = meandiff_direction(gpt2, HOOK, DATA)
    tox = torch.cat([a[1:] for a in capture(gpt2, TOXIC, HOOK)]).mean(0)
    cln = torch.cat([a[1:] for a in capture(gpt2, CLEAN, HOOK)]).mean(0)
    want = (tox - cln) / (tox - cln).norm()
    assert torch.allclose(v, want, atol=1e-5)
    m = build_baseline(gpt2, "meandiff", hook=HOOK, tier="high", data=DATA)
    median = median_residual_norm(gpt2, HOOK)
    with m.context() as st:
        shift = st.resolved[0].vector
        assert torch.allclose(shift / shift.norm(), -want, atol=1e-5)
        assert float(shift.norm()) == pytest.approx(TIER_FACTORS["high"] * median, rel=1e-4)


def test_aura_factors_are_one_minus_gini(gpt2):
    factors = aura_factors(gpt2, DATA)
    tox, cln = neuron_pooled(gpt2, TOXIC), neuron_pooled(gpt2, CLEAN)
    y = np.r_[np.ones(len(TOXIC)), np.zeros(len(CLEAN))]
    for layer in (0, 2):
        for j in (0, 5, 17):
            auc = roc_auc_score(y, np.r_[tox[layer][:, j].numpy(), cln[layer][:, j].numpy()])
            want = 1 - 2 * (auc - 0.5) if auc > 0.5 else 1.0
            assert float(factors[layer][j]) == pytest.approx(want, abs=1e-5)
    assert any(bool((f < 1).any()) for f in factors)


@torch.no_grad()
def test_aura_hooks_scale_neuron_activations(gpt2):
    factors = [torch.ones(f.numel()) for f in aura_factors(gpt2, DATA)]
    factors[1] = torch.rand(factors[1].numel())  # only layer 1 is damped, so its input is unchanged
    enc = tokenize_batch(gpt2.tokenizer, ["She walked to the station"])
    seen = []
    proj = mlp_out_projection(gpt2.layers[1])
    with aura_hooks(gpt2, factors):  # a reader registered after AurA's hook sees the scaled neurons
        h = proj.register_forward_pre_hook(lambda m, a: seen.append(a[0].clone()))
        gpt2.model(**enc)
        h.remove()
    h = proj.register_forward_pre_hook(lambda m, a: seen.append(a[0].clone()))
    gpt2.model(**enc)
    h.remove()
    assert torch.allclose(seen[0], seen[1] * factors[1], atol=1e-6)
    base = gpt2.model(**enc).logits
    with aura_hooks(gpt2, [torch.ones_like(f) for f in factors]):
        same = gpt2.model(**enc).logits
    assert torch.equal(base, same)
    with aura_hooks(gpt2, factors):
        changed = gpt2.model(**enc).logits
    assert not torch.allclose(base, changed)


@torch.no_grad()
def test_surgery_edits_selected_neurons_and_restores(gpt2):
    m = build_baseline(gpt2, "surgery", hook=HOOK, tier="medium", data=DATA)
    before = {i: mlp_in_weights(b)[0].clone() for i, b in enumerate(gpt2.layers)}
    enc = tokenize_batch(gpt2.tokenizer, ["She walked to the station"])
    base = gpt2.model(**enc).logits
    with m.context():
        changed = [i for i, b in enumerate(gpt2.layers) if not torch.equal(mlp_in_weights(b)[0], before[i])]
        assert changed
        w, axis = mlp_in_weights(gpt2.layers[changed[0]])
        diff = (w - before[changed[0]]).abs().sum(0 if axis == 1 else 1)
        assert 0 < int((diff > 0).sum()) <= m.details["edited_neurons"]
        assert not torch.allclose(gpt2.model(**enc).logits, base)
    for i, b in enumerate(gpt2.layers):
        assert torch.equal(mlp_in_weights(b)[0], before[i])
    assert torch.equal(gpt2.model(**enc).logits, base)
    assert m.details["edited_neurons"] >= 1 and 0.5 <= m.details["probe_train_acc"] <= 1.0
