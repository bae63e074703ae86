"""sae-gated-meandiff: the mean-difference direction where the SAE's gate or detector says, by hand."""

from __future__ import annotations

import pytest
import torch

from helpers import latent_detector
from saedetox.errors import SaedetoxError
from saedetox.methods.contrast import ContrastData
from saedetox.methods.meandiff import meandiff_direction
from saedetox.methods.registry import build_method, exportable_methods
from saedetox.model.tokens import tokenize_batch
from saedetox.sae.load import load_sae
from saedetox.steering.spec import Intervention, SteeringSpec

LATENTS = [1, 5, 7, 12]
HOOK = "blocks.1.hook_resid_pre"
PROMPTS = ["The library opens at nine in the morning", "you stupid idiot, what the hell", "She walked", "ok"]
DATA = ContrastData(
    ["you stupid idiot, shut up", "what a damn fool you are", "go to hell, idiot", "shut up you moron"],
    ["you are a kind person, thanks", "what a lovely day it is", "go to the park", "please be quiet, my friend"],
)


def _spec(sae_dir, **kw):
    return SteeringSpec([Intervention(sae=str(sae_dir), latents=LATENTS, **kw)])


def _logits(lm, enc, method=None, edit=None):
    """Logits of ``enc``, with ``method`` active or ``edit`` applied to the hidden state entering block 1."""
    pos = (enc["attention_mask"].cumsum(-1) - 1).clamp_min(0)
    handle = None
    if edit is not None:
        block = lm.model.transformer.h[1]
        handle = block.register_forward_pre_hook(lambda m, a, k: ((edit(a[0]), *a[1:]), k), with_kwargs=True)
    try:
        with method.context() if method is not None else torch.no_grad():
            with torch.no_grad():
                return lm.model(**enc, position_ids=pos).logits
    finally:
        if handle is not None:
            handle.remove()


def test_conditional_is_meandiff_where_the_gate_is_open_and_unsteered_where_shut(gpt2, sae_dir):
    sae = load_sae(str(sae_dir), model_uses_layernorm=gpt2.uses_layernorm)
    enc = tokenize_batch(gpt2.tokenizer, PROMPTS, padding_side="right")
    ids, mask = enc["input_ids"], enc["attention_mask"].bool()
    counts = mask & (ids != gpt2.tokenizer.bos_token_id)
    # per-latent gates set so that some sequences open late and some never: the 80th percentile of the
    # selected latents' activations on these prompts
    with torch.no_grad():
        h = {}
        handle = gpt2.model.transformer.h[1].register_forward_pre_hook(lambda m, a: h.setdefault("x", a[0]))
        gpt2.model(**enc, position_ids=(enc["attention_mask"].cumsum(-1) - 1).clamp_min(0))
        handle.remove()
        acts = sae.sae.encode(sae.prepare(h["x"]))[..., LATENTS]
    gates = torch.quantile(acts[counts], 0.8, dim=0)
    v = meandiff_direction(gpt2, HOOK, DATA)
    alpha = 6.0
    seen = {}

    def edit(x):
        a = sae.sae.encode(sae.prepare(x))[..., LATENTS]
        fire = ((a > gates).any(-1) & counts).int()
        gate = torch.cummax(fire, dim=1).values.bool()
        seen["gate"] = gate
        return x - alpha * gate.unsqueeze(-1) * v

    want = _logits(gpt2, enc, edit=edit)
    spec = _spec(sae_dir, mode="conditional", strength=alpha, thresholds=gates.tolist())
    m = build_method(gpt2, "sae-gated-meandiff", spec, data=DATA)
    got = _logits(gpt2, enc, m)
    gate = seen["gate"]
    assert gate[counts].any() and not gate[counts].all()  # open at some positions, shut at others
    assert not gate.all(-1).any()
    assert torch.allclose(got[mask], want[mask], atol=1e-4)
    meandiff = build_method(gpt2, "meandiff", hook=HOOK, tier=None, strength=alpha, data=DATA)
    assert torch.allclose(m.steerer.resolved[0].vector, meandiff.steerer.resolved[0].vector)
    base = _logits(gpt2, enc)
    shut = mask & ~gate  # before a sequence's gate opens (the model is causal): exactly unsteered
    assert shut.any() and torch.allclose(got[shut], base[shut], atol=1e-5)
    assert not torch.allclose(got[gate], base[gate], atol=1e-3)


def test_adaptive_scales_meandiff_by_the_latent_detector(gpt2, sae_dir):
    det = latent_detector(gpt2, sae_dir, LATENTS, "token")
    sae = load_sae(str(sae_dir), model_uses_layernorm=gpt2.uses_layernorm)
    enc = tokenize_batch(gpt2.tokenizer, PROMPTS, padding_side="right")
    counts = enc["attention_mask"].bool() & (enc["input_ids"] != gpt2.tokenizer.bos_token_id)
    v = meandiff_direction(gpt2, HOOK, DATA)
    coef, scale = torch.tensor(det["coef"]), torch.tensor(det["scale"])

    def edit(x):
        e = sae.sae.encode(sae.prepare(x))[..., LATENTS]
        p = torch.sigmoid((e / scale) @ coef + det["intercept"]) * counts
        return x - 5.0 * p.unsqueeze(-1) * v

    m = build_method(gpt2, "sae-gated-meandiff", _spec(sae_dir, mode="adaptive", strength=5.0, detector=det), data=DATA)
    mask = enc["attention_mask"].bool()
    assert torch.allclose(_logits(gpt2, enc, m)[mask], _logits(gpt2, enc, edit=edit)[mask], atol=1e-4)


@pytest.mark.parametrize("mode", ["conditional", "adaptive"])
def test_alpha_zero_is_unsteered(gpt2, sae_dir, mode):
    det = latent_detector(gpt2, sae_dir, LATENTS, "max") if mode == "adaptive" else None
    enc = tokenize_batch(gpt2.tokenizer, PROMPTS, padding_side="left")
    spec = _spec(sae_dir, mode=mode, strength=0.0, threshold=-1e9 if mode == "conditional" else 0.0, detector=det)
    m = build_method(gpt2, "sae-gated-meandiff", spec, data=DATA)
    assert torch.equal(_logits(gpt2, enc, m), _logits(gpt2, enc))


def test_refusals(gpt2, sae_dir):
    with pytest.raises(SaedetoxError, match="constant is meandiff"):
        build_method(gpt2, "sae-gated-meandiff", _spec(sae_dir, mode="constant"), data=DATA)
    assert "sae-gated-meandiff" not in exportable_methods() and "sae-targeted" in exportable_methods()


def test_sweep_runs_plan_from_the_declarations(sae_dir):
    from saedetox.experiments.config import parse_config
    from saedetox.experiments.plan import plan

    raw = {
        "model": "reference",
        "sae": str(sae_dir),
        "features": LATENTS,
        "runs": [
            {"method": "sae-targeted", "modes": ["constant", "conditional"], "push": [0.1]},
            {"method": "sae-gated-meandiff", "modes": ["adaptive"], "push": [0.1, 0.2]},
        ],
    }
    names = [r.name for r in plan(parse_config(raw))]
    assert names == [
        "sae-targeted-constant-p0.1",
        "sae-targeted-conditional-p0.1",
        "sae-gated-meandiff-adaptive-p0.1",
        "sae-gated-meandiff-adaptive-p0.2",
    ]
    raw["runs"] = [{"method": "sae-gated-meandiff", "modes": ["constant"], "push": [0.1]}]
    with pytest.raises(SaedetoxError, match="modes conditional, adaptive"):
        parse_config(raw)


def test_the_vllm_levels_carry_the_direction_and_the_sae_gate(gpt2, sae_dir):
    from saedetox.model.capture import capture
    from saedetox.serving.compiled import compile_levels
    from saedetox.steering.apply import apply_intervention

    spec = _spec(sae_dir, mode="conditional", strength=6.0, threshold=0.0)
    m = build_method(gpt2, "sae-gated-meandiff", spec, data=DATA)
    (compiled,) = compile_levels(gpt2, {"gated": m.steerer.spec})["gated"]
    resolved = m.steerer.resolved[0]
    moved = []
    for x in capture(gpt2, PROMPTS, HOOK, prepend_bos=True):
        x = x[None].float()
        where, real = torch.ones(1, x.shape[1], 1), torch.ones(1, x.shape[1], dtype=torch.bool)
        counts = real.clone()
        counts[:, 0] = False
        want = apply_intervention(resolved, x, where, real, counts).out
        assert torch.allclose(apply_intervention(compiled, x, where, real, counts).out, want, atol=1e-5)
        moved.append(bool((want - x).abs().max() > 1e-4))
    assert any(moved)
