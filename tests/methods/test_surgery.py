"""Model Surgery as published: final-layer probe, the most anti-aligned gate rows (pooled), +α·v, restored after."""

from __future__ import annotations

import json
import random

import pytest
import torch
from safetensors.torch import load_file

from helpers import tiny_gemma2, tiny_gpt2, tiny_llama, tiny_opt, tiny_phi3
from saedetox.data.calibration import CALIBRATION_TEXTS
from saedetox.errors import SaedetoxError
from saedetox.methods.contrast import ContrastData
from saedetox.methods.surgery import (
    apply_surgery,
    export_surgery,
    select_rows,
    surgery_method,
    surgery_plan,
    tier_alpha,
)
from saedetox.methods.surgery_probe import ProbeConfig, final_features, train_probe, train_toxicity_probe
from saedetox.model.tokens import tokenize_batch

BAD = ["fuck", "idiot", "stupid", "damn", "shit", "hell"]
FAST = ProbeConfig(epochs=300, lr=1e-2, batch_size=64, holdout=0.0)  # 64 texts: the published lr barely moves


def toxic_variants(seed: int = 0) -> ContrastData:
    """Clean sentences, and the same sentences with two swear words inserted at a random place."""
    r = random.Random(seed)
    toxic = []
    for t in CALIBRATION_TEXTS:
        w = t.split()
        k = r.randrange(len(w) + 1)
        toxic.append(" ".join(w[:k] + [r.choice(BAD), r.choice(BAD)] + w[k:]))
    return ContrastData(toxic, list(CALIBRATION_TEXTS))


def reading_rows(lm, layer, gain_aware=True):
    """Independent of the library: each neuron's input weights times the gain of the norm before the MLP."""
    b = lm.layers[layer]
    if lm.family == "gpt2":
        w, g = b.mlp.c_fc.weight.detach().T, b.ln_2.weight.detach()
    elif lm.family == "opt":
        w, g = b.fc1.weight.detach(), b.final_layer_norm.weight.detach()
    elif lm.family == "phi3":
        w, g = (
            b.mlp.gate_up_proj.weight.detach()[: lm.model.config.intermediate_size],
            b.post_attention_layernorm.weight,
        )
    elif lm.family == "gemma":
        w, g = b.mlp.gate_proj.weight.detach(), 1 + b.pre_feedforward_layernorm.weight.detach()
    else:
        w, g = b.mlp.gate_proj.weight.detach(), b.post_attention_layernorm.weight.detach()
    return w.float() * (g.detach().float() if gain_aware else 1.0)


def _randomise_gains(lm, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in lm.model.named_parameters():
            if "norm" in name or "ln_" in name:
                p.copy_(torch.rand(p.shape, generator=g) * 2 - 0.5 if p.dim() == 1 and "bias" not in name else p)


@pytest.mark.parametrize("factory", [tiny_gpt2, tiny_gemma2, tiny_phi3, tiny_opt], ids=lambda f: f.__name__)
@pytest.mark.parametrize("gain_aware", [True, False])
def test_rows_are_the_most_anti_aligned_pooled_over_layers(factory, gain_aware):
    lm = factory()
    _randomise_gains(lm)  # non-uniform gains: the two rankings differ
    v = torch.randn(lm.d_model, generator=torch.Generator().manual_seed(1))
    rows, total = select_rows(lm, v, gain_aware=gain_aware)
    per_layer = [reading_rows(lm, i, gain_aware) for i in range(lm.n_layers)]
    scores = torch.cat([-(r @ v) / (r.norm(dim=1) * v.norm()) for r in per_layer])
    index = [(i, j) for i, r in enumerate(per_layer) for j in range(r.shape[0])]
    assert total == len(index)
    k = round(16384 / (32 * 11008) * total)  # the published share of Llama-2-7B's gate rows
    assert len(rows) == k == len(set(rows))
    chosen = torch.tensor([index.index(r) for r in rows])
    rest = torch.ones(total, dtype=torch.bool)
    rest[chosen] = False
    assert float(scores[chosen].min()) >= float(scores[rest].max()) - 1e-6  # top −cos, over all layers at once
    assert bool((scores[chosen] > 0).all())  # anti-aligned: cos(row, v) < 0
    other, _ = select_rows(lm, v, gain_aware=not gain_aware)
    assert set(other) != set(rows)


def test_row_count_rule_and_limits(gpt2):
    v = torch.randn(gpt2.d_model)
    total = gpt2.n_layers * 4 * gpt2.d_model
    rows, n = select_rows(gpt2, v)
    assert n == total and len(rows) == max(1, round(0.04651 * total))
    assert len(select_rows(gpt2, v, n_rows=7)[0]) == 7
    for bad in (0, total + 1):
        with pytest.raises(SaedetoxError, match="between 1 and"):
            select_rows(gpt2, v, n_rows=bad)
    phi = tiny_phi3()
    assert select_rows(phi, torch.randn(phi.d_model))[1] == phi.n_layers * 64  # gate half only, not 2m


@pytest.mark.parametrize("factory", [tiny_gpt2, tiny_phi3], ids=["gpt2-columns", "phi3-gate-half"])
@torch.no_grad()
def test_edit_adds_alpha_v_to_the_selected_rows_and_is_restored(factory):
    lm = factory()
    probe = train_toxicity_probe(lm, toxic_variants(), FAST)
    plan = surgery_plan(lm, probe, strength=0.3)
    before = {k: v.clone() for k, v in lm.model.state_dict().items()}
    enc = tokenize_batch(lm.tokenizer, ["She walked to the station"])
    base = lm.model(**enc).logits
    with apply_surgery(lm, plan):
        after = lm.model.state_dict()
        changed = {k for k in before if not torch.equal(before[k], after[k])}
        for i in range(lm.n_layers):
            if lm.family == "gpt2":
                key, diff = f"transformer.h.{i}.mlp.c_fc.weight", None
                diff = (after[key] - before[key]).T
            else:
                key = f"model.layers.{i}.mlp.gate_up_proj.weight"
                full = after[key] - before[key]
                assert not full[64:].any()  # the up half is never edited
                diff = full[:64]
            want = torch.zeros_like(diff)
            js = [j for layer, j in plan.rows if layer == i]
            want[js] = 0.3 * probe.vector
            assert torch.allclose(diff, want, atol=1e-6)
        assert changed == {k for k in before if k.endswith(("c_fc.weight", "gate_up_proj.weight"))}
        assert not torch.allclose(lm.model(**enc).logits, base)
    after = lm.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # restored bit-exactly
    assert torch.equal(lm.model(**enc).logits, base)


def test_tier_alpha_is_a_multiple_of_the_median_cancelling_alpha(gpt2):
    v = torch.randn(gpt2.d_model, generator=torch.Generator().manual_seed(2))
    rows, _ = select_rows(gpt2, v)
    vhat = v / v.norm()
    cancel = []
    for i, j in rows:  # the α that makes edited row j's reading along v̂ zero: r·v̂ + α (v∘g)·v̂ = 0
        g = gpt2.layers[i].ln_2.weight.detach()
        cancel.append(float(-(reading_rows(gpt2, i)[j] @ vhat) / ((v * g) @ vhat)))
    med = float(torch.tensor(cancel).median())
    assert med > 0
    for tier, k in (("low", 1), ("medium", 2), ("high", 4)):
        assert tier_alpha(gpt2, v, rows, tier, gain_aware=True) == pytest.approx(k * med, rel=1e-5)
    with pytest.raises(SaedetoxError, match="tier"):
        tier_alpha(gpt2, v, rows, "0.3", gain_aware=True)


@pytest.mark.parametrize("factory", [tiny_gpt2, tiny_llama], ids=["gpt2", "llama"])
@torch.no_grad()
def test_edited_neurons_rise_on_toxic_text(factory):
    """The mechanism: an edited row's pre-activation moves by α·(v · norm(x)), more on toxic than on clean tokens."""
    lm = factory()
    data = toxic_variants()
    probe = train_toxicity_probe(lm, data, FAST)
    plan = surgery_plan(lm, probe, tier="medium")
    assert plan.alpha > 0

    def gate(layer):
        return lm.layers[layer].mlp.c_fc if lm.family == "gpt2" else lm.layers[layer].mlp.gate_proj

    def capture(texts, layer):  # (what the MLP reads, the gate pre-activations) at real tokens
        enc = tokenize_batch(lm.tokenizer, texts, False, "right")
        block = lm.layers[layer]
        norm = block.ln_2 if lm.family == "gpt2" else block.post_attention_layernorm
        got = {}
        hs = [norm.register_forward_hook(lambda m, a, o: got.__setitem__("n", o))]
        hs += [gate(layer).register_forward_hook(lambda m, a, o: got.__setitem__("z", o))]
        lm.model(**enc)
        for h in hs:
            h.remove()
        mask = enc["attention_mask"].bool()
        return got["n"][mask], got["z"][mask]

    texts = {"tox": data.toxic, "cln": data.clean}
    with apply_surgery(lm, plan):
        edited = {(i, k): capture(t, i) for i in range(lm.n_layers) for k, t in texts.items()}
    for i in range(lm.n_layers):
        js = [j for layer, j in plan.rows if layer == i]
        if not js:
            continue
        delta = {}
        for kind in texts:
            n, z = edited[(i, kind)]
            d = z[:, js] - gate(i)(n)[:, js]  # edited minus original rows on the same input (restored weights)
            assert torch.allclose(d, plan.alpha * (n @ probe.vector)[:, None].expand_as(d), atol=1e-5)
            delta[kind] = float(d.mean())
        assert delta["tox"] > delta["cln"], (i, delta)


@torch.no_grad()
def test_probe_separation_shrinks_on_a_tied_gpt2():
    """Model level: with c_proj = c_fc.T each neuron writes along what it reads, so the edit pushes against v."""
    lm = tiny_gpt2()
    for b in lm.layers:
        b.mlp.c_proj.weight.copy_(b.mlp.c_fc.weight.T)
    data = toxic_variants()
    probe = train_toxicity_probe(lm, data, FAST)

    def gap():
        return float(
            (final_features(lm, data.toxic) @ probe.vector).mean()
            - (final_features(lm, data.clean) @ probe.vector).mean()
        )

    plan = surgery_plan(lm, probe, tier="medium")
    g0 = gap()
    with apply_surgery(lm, plan):
        g1 = gap()
    assert g0 > 0 and g1 < 0.9 * g0


@pytest.mark.parametrize("factory", [tiny_gpt2, tiny_llama, tiny_gemma2, tiny_opt], ids=lambda f: f.__name__)
@torch.no_grad()
def test_probe_reads_the_final_normed_mean_hidden_state(factory):
    lm = factory()
    texts = ["She walked to the station", "go to hell", "The library opens at nine in the morning"]
    got = final_features(lm, texts, batch_size=2)
    for i, t in enumerate(texts):
        ids = lm.tokenizer(t, return_tensors="pt")["input_ids"]
        h = lm.model(input_ids=ids, output_hidden_states=True).hidden_states[-1][0]
        assert torch.allclose(got[i], h.mean(0), atol=1e-5)


@torch.no_grad()
def test_post_ln_opt_probe_reads_the_last_layer():
    lm = tiny_opt(post_ln=True)
    ids = lm.tokenizer("She walked to the station", return_tensors="pt")["input_ids"]
    out = {}
    h = lm.layers[-1].register_forward_hook(lambda m, a, o: out.__setitem__("h", o))
    lm.model(input_ids=ids)
    h.remove()
    assert torch.allclose(final_features(lm, ["She walked to the station"])[0], out["h"][0].mean(0), atol=1e-5)


def test_train_probe_returns_the_toxic_row_and_holds_out():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 8, generator=g)
    y = (x[:, 3] > 0).long()
    v, train_acc, heldout = train_probe(x, y, ProbeConfig(epochs=50, lr=1e-2, batch_size=16, holdout=0.1))
    assert heldout is not None and heldout > 0.85 and train_acc > 0.85
    assert int(v.abs().argmax()) == 3 and float(v[3]) > 0  # the toxic class (1) row points at the positive side


def test_method_records_config_and_exports(tmp_path):
    lm = tiny_llama()
    data = toxic_variants()
    m = surgery_method(lm, data, tier="high", probe=ProbeConfig(epochs=30, lr=1e-2, batch_size=16))
    s = m.details["surgery"]
    assert s["probe_layer"] == lm.n_layers and s["probe_site"] == "model.norm" and 0 <= s["probe_acc"] <= 1
    assert sum(s["rows_per_layer"]) == s["n_rows"] == round(0.04651 * 2 * 64) and s["alpha"] == m.details["alpha"] > 0
    json.dumps(m.details)  # goes into config.json
    with pytest.raises(SaedetoxError, match="named tier"):
        surgery_method(lm, data, tier=0.3)
    plan = surgery_plan(lm, train_toxicity_probe(lm, data, FAST), strength=0.5)
    export_surgery(lm, plan, tmp_path / "out")
    meta = json.loads((tmp_path / "out" / "saedetox_export.json").read_text())
    new = load_file(tmp_path / "out" / "model.safetensors")
    old = lm.model.state_dict()
    v = torch.tensor(meta["edit"]["probe_vector"])
    for key in old:  # redo the edit from the provenance file alone
        want = old[key].clone()
        for i, j in meta["edit"]["rows"]:
            if key == f"model.layers.{i}.mlp.gate_proj.weight":
                want[j] += meta["edit"]["alpha"] * v
        assert torch.allclose(new[key], want, atol=1e-6), key


@torch.no_grad()
def test_surgery_lowers_the_probe_score_on_toxic_text_where_the_probe_separates():
    """Direction of effect on the reference LM, whose final state separates ParaDetox pairs.

    The probe is trained on 60 pairs and judged on 60 others: it must separate them (held-out AUROC,
    computed here with sklearn), and after surgery at the published α = 1.0 its score on the held-out
    toxic texts must fall by at least half the toxic−clean gap. Measured: 3.72 → −3.00 (clean −2.24);
    the same edit with −v raises it to 5.71, and the pre-fix rule (most *aligned* rows, shifted
    against the probe) to 4.65, so neither sign error passes.

    Not monotonic in the edit's size (measured, 200 pairs): raw α 0.1 / 0.3 raise the toxic score
    (3.41 → 3.56 / 4.28) before α 1 / 3 lower it (0.04 / −6.4); the named tiers (α 0.02–0.08) leave
    it where it was. This test pins the published α on a probe whose norm (≈ 5) makes that edit large.
    """
    from sklearn.metrics import roc_auc_score

    from saedetox.methods.contrast import default_contrast
    from saedetox.model.load import load_model

    lm = load_model("reference")
    d = default_contrast(max_pairs=120)
    train, test = ContrastData(d.toxic[:60], d.clean[:60]), ContrastData(d.toxic[60:], d.clean[60:])
    probe = train_toxicity_probe(lm, train, ProbeConfig(epochs=200, lr=1e-2, batch_size=64, holdout=0.0))
    tox, cln = final_features(lm, test.toxic) @ probe.vector, final_features(lm, test.clean) @ probe.vector
    auroc = roc_auc_score([1] * len(tox) + [0] * len(cln), torch.cat([tox, cln]).numpy())
    assert auroc > 0.75  # the probe separates toxic from clean on texts it was not trained on
    gap = float(tox.mean() - cln.mean())
    with apply_surgery(lm, surgery_plan(lm, probe, strength=1.0)):
        after = final_features(lm, test.toxic) @ probe.vector
    assert float(after.mean()) < float(tox.mean()) - 0.5 * gap
    assert float((after < tox).float().mean()) > 0.8  # most toxic texts, not just the mean
