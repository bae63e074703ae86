"""AurA as published: max-pooled expert responses, per-unit AUROC, 1 − 2(AUROC − 0.5), scaling module outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

from helpers import tiny_gpt2, tiny_llama, tiny_opt, tiny_phi3
from saedetox.methods.aura import (
    aura_factors,
    aura_hooks,
    aura_method,
    expert_modules,
    factors_from_auroc,
    fold_aura,
    masked_max,
    max_responses,
)
from saedetox.methods.contrast import ContrastData
from saedetox.model.tokens import tokenize_batch

TOXIC = ["you stupid idiot, shut up", "what a damn fool you are", "shut up you fucking moron", "go to hell, idiot"]
CLEAN = ["you are a kind person, thanks", "what a lovely day it is", "please be quiet, my friend", "go to the park"]
DATA = ContrastData(TOXIC * 2, CLEAN * 2)


def test_max_pooling_decides_where_mean_pooling_disagrees():
    # one unit; toxic texts peak high once, clean ones sit at a higher average; a padded slot holds 100
    out = torch.tensor([[0, 0, 9, 0], [0, 1, 8, 0], [4, 4, 4, 100], [5, 3, 4, 0]], dtype=torch.float32)[..., None]
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 0], [1, 1, 1, 0], [1, 1, 1, 0]], dtype=torch.bool)
    pooled = masked_max(out, mask)[:, 0]
    assert pooled.tolist() == [9, 8, 4, 5]  # the padded 100 is ignored
    y = [1, 1, 0, 0]
    auc_max = roc_auc_score(y, pooled.numpy())
    auc_mean = roc_auc_score(y, ((out[..., 0] * mask).sum(1) / mask.sum(1)).numpy())
    assert auc_max == 1.0 and auc_mean == 0.0  # the two poolings disagree completely
    assert factors_from_auroc(torch.tensor([auc_max, auc_mean])).tolist() == [0.0, 1.0]
    flat = masked_max(out.reshape(16, 1), mask)  # OPT feeds its MLP flattened tokens [B*T, U]
    assert torch.equal(flat, masked_max(out, mask))


@pytest.mark.parametrize("factory,rel", [(tiny_gpt2, "mlp.c_fc"), (tiny_llama, "mlp.gate_proj"), (tiny_opt, "fc1")])
@torch.no_grad()
def test_responses_equal_an_independent_capture(factory, rel):
    lm = factory()
    texts = TOXIC + CLEAN
    name = [n for n, _ in expert_modules(lm) if n.endswith(f"0.{rel}")][0]
    module = lm.model.get_submodule(name)
    got = max_responses(lm, texts, [(name, module)], batch_size=3)[name]
    seen = []
    h = module.register_forward_hook(lambda m, a, o: seen.append(o.detach().clone()))
    try:
        for t in texts:  # one text at a time: no padding at all, the tokenizer's own encoding
            ids = lm.tokenizer(t, return_tensors="pt")["input_ids"]
            lm.model(input_ids=ids)
    finally:
        h.remove()
    want = torch.stack([o.reshape(-1, o.shape[-1]).amax(0) for o in seen])
    assert torch.allclose(got, want, atol=1e-5)  # the module's output (pre-activation), max over real tokens


def test_dampened_units_are_exactly_those_above_half(gpt2):
    factors = aura_factors(gpt2, DATA)
    modules = expert_modules(gpt2)
    assert list(factors) == [n for n, _ in modules] and len(modules) == 2 * gpt2.n_layers
    tox = max_responses(gpt2, DATA.toxic, modules)
    cln = max_responses(gpt2, DATA.clean, modules)
    y = np.r_[np.ones(len(DATA.toxic)), np.zeros(len(DATA.clean))]
    n_above = 0
    for name, f in factors.items():
        auc = roc_auc_score(np.tile(y, (f.numel(), 1)).T, np.r_[tox[name].numpy(), cln[name].numpy()], average=None)
        want = np.where(auc > 0.5, 1 - 2 * (auc - 0.5), 1.0)
        np.testing.assert_allclose(f.numpy(), want, atol=1e-9)
        assert set(np.flatnonzero(f.numpy() < 1)) == set(np.flatnonzero(auc > 0.5))
        n_above += int((auc > 0.5).sum())
    summary = aura_method(gpt2, DATA).details["aura"]
    assert summary["n_dampened"] == n_above > 0
    assert summary["n_units"] == gpt2.n_layers * (4 * gpt2.d_model + gpt2.d_model)
    assert sum(summary["modules"].values()) == n_above
    assert summary["min_factor"] == pytest.approx(min(float(f.min()) for f in factors.values()))


@torch.no_grad()
def test_hooks_scale_module_outputs_gpt2(gpt2):
    enc = tokenize_batch(gpt2.tokenizer, ["She walked to the station"])
    g = torch.Generator().manual_seed(0)
    factors = {n: torch.rand(m.weight.shape[-1], generator=g) for n, m in expert_modules(gpt2)}
    block = gpt2.layers[1].mlp
    seen: dict[str, torch.Tensor] = {}
    hooks = [block.c_fc.register_forward_hook(lambda m, a, o: seen.__setitem__("z", o.clone()))]
    gpt2.model(**enc)
    z = seen["z"]
    with aura_hooks(gpt2, factors):  # readers registered after AurA's hooks see the dampened values
        hooks += [block.c_fc.register_forward_hook(lambda m, a, o: seen.__setitem__("fc", o.clone()))]
        hooks += [block.c_proj.register_forward_pre_hook(lambda m, a: seen.__setitem__("proj_in", a[0].clone()))]
        hooks += [block.c_proj.register_forward_hook(lambda m, a, o: seen.__setitem__("proj", o.clone()))]
        gpt2.model(**enc)
    for h in hooks:
        h.remove()
    a_fc, a_proj = factors["transformer.h.1.mlp.c_fc"], factors["transformer.h.1.mlp.c_proj"]
    # layer 0 is dampened too, so layer 1's input differs: compare within the dampened run
    assert torch.allclose(seen["proj_in"], block.act(seen["fc"]), atol=1e-6)  # GELU(α⊙z): pre-activation scaled
    raw_proj = F.linear(seen["proj_in"], block.c_proj.weight.T, block.c_proj.bias)
    assert torch.allclose(seen["proj"], raw_proj * a_proj, atol=1e-5)  # c_proj output, bias included, scaled
    assert not torch.allclose(block.act(z * a_fc), block.act(z) * a_fc, atol=1e-4)  # the order matters
    base = gpt2.model(**enc).logits
    with aura_hooks(gpt2, {n: torch.ones_like(f) for n, f in factors.items()}):
        assert torch.equal(gpt2.model(**enc).logits, base)
    with aura_hooks(gpt2, factors):
        assert not torch.allclose(gpt2.model(**enc).logits, base)
    assert torch.equal(gpt2.model(**enc).logits, base)  # hooks removed on exit


@torch.no_grad()
def test_hooks_scale_gate_and_up_separately_llama():
    lm = tiny_llama()
    enc = tokenize_batch(lm.tokenizer, ["She walked to the station"])
    g = torch.Generator().manual_seed(1)
    factors = {n: torch.rand(m.weight.shape[0], generator=g) for n, m in expert_modules(lm)}
    mlp = lm.layers[0].mlp
    seen: dict[str, torch.Tensor] = {}
    hooks = [mlp.gate_proj.register_forward_hook(lambda m, a, o: seen.__setitem__("g", o.clone()))]
    hooks += [mlp.up_proj.register_forward_hook(lambda m, a, o: seen.__setitem__("u", o.clone()))]
    lm.model(**enc)  # layer 0's input is not touched by AurA: raw gate / up outputs
    with aura_hooks(lm, factors):
        hooks += [mlp.down_proj.register_forward_pre_hook(lambda m, a: seen.__setitem__("down_in", a[0].clone()))]
        lm.model(**enc)
    for h in hooks:
        h.remove()
    a_g, a_u = factors["model.layers.0.mlp.gate_proj"], factors["model.layers.0.mlp.up_proj"]
    want = mlp.act_fn(seen["g"] * a_g) * (seen["u"] * a_u)
    assert torch.allclose(seen["down_in"], want, atol=1e-6)


def test_fused_and_flattened_layouts():
    phi = tiny_phi3()
    units = {n: f.numel() for n, f in aura_factors(phi, DATA).items()}
    assert units["model.layers.0.mlp.gate_up_proj"] == 2 * 64 and units["model.layers.0.mlp.down_proj"] == 32
    opt = tiny_opt()
    factors = aura_factors(opt, DATA)
    assert {n: f.numel() for n, f in factors.items() if ".0." in n} == {
        "model.decoder.layers.0.fc1": 64,
        "model.decoder.layers.0.fc2": 32,
    }
    enc = tokenize_batch(opt.tokenizer, ["She walked", "The library opens at nine"], padding_side="right")
    with torch.no_grad(), aura_hooks(opt, factors):
        assert torch.isfinite(opt.model(**enc).logits).all()


@pytest.mark.parametrize("factory", [tiny_gpt2, tiny_llama, tiny_opt, tiny_phi3])
@torch.no_grad()
def test_folded_dampening_equals_the_hooks_and_restores_the_weights(factory):
    lm = factory()
    enc = tokenize_batch(lm.tokenizer, ["She walked to the station", "you idiot"])
    g = torch.Generator().manual_seed(2)
    factors = {n: torch.rand(f.shape, generator=g) for n, f in aura_factors(lm, DATA).items()}
    before = {k: v.clone() for k, v in lm.model.state_dict().items()}
    with aura_hooks(lm, factors):
        hooked = lm.model(**enc).logits
    with fold_aura(lm, factors):
        folded = lm.model(**enc).logits
        assert any(not torch.equal(v, before[k]) for k, v in lm.model.state_dict().items())
    assert torch.allclose(folded, hooked, atol=1e-5)
    assert all(torch.equal(v, before[k]) for k, v in lm.model.state_dict().items())
