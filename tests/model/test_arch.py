"""The per-architecture tables the weight-level baselines use, checked against what each model computes."""

from __future__ import annotations

import pytest
import torch

from helpers import FAMILY_BUILDERS, tiny_opt
from saedetox.errors import SaedetoxError
from saedetox.model import arch
from saedetox.model.tokens import tokenize_batch

BUILDERS = {**FAMILY_BUILDERS, "opt-postln": lambda: tiny_opt(post_ln=True)}


@pytest.fixture(scope="module", params=list(BUILDERS))
def lm(request):
    model = BUILDERS[request.param]()
    with torch.no_grad():  # non-trivial gains, so a wrong gain (e.g. w instead of 1 + w) shows
        for name, p in model.model.named_parameters():
            if p.dim() == 1 and ("norm" in name or "ln_" in name) and "bias" not in name:
                p.copy_(torch.linspace(-0.5, 1.5, p.numel()))
    return model


@torch.no_grad()
def test_gate_rows_are_what_the_mlp_reads_after_its_norm(lm):
    """The first MLP linear's pre-activations = (mlp_input_norm output) · gate_rows + bias, for every token."""
    enc = tokenize_batch(lm.tokenizer, ["She walked to the station", "go"], padding_side="right")
    block = lm.layers[1]
    norm = arch.mlp_input_norm(block, lm.model)
    (_, first), *_ = arch.mlp_linears(block)
    got = {}
    h1 = norm.register_forward_hook(lambda m, a, o: got.__setitem__("n", o))
    h2 = first.register_forward_hook(lambda m, a, o: got.__setitem__("z", o))
    lm.model(**enc)
    h1.remove()
    h2.remove()
    _, rows = arch.gate_rows(block)
    n = got["n"].reshape(-1, lm.d_model)
    z = got["z"].reshape(n.shape[0], -1)[:, : rows.shape[0]]
    bias = first.bias[: rows.shape[0]] if getattr(first, "bias", None) is not None else 0
    assert torch.allclose(z, n @ rows.T + bias, atol=1e-5)


@torch.no_grad()
def test_norm_gain_is_the_gain_the_norm_applies(lm):
    norm = arch.mlp_input_norm(lm.layers[0], lm.model)
    d = lm.d_model
    x = torch.tensor([1.0, -1.0] * (d // 2))[None]  # mean 0, RMS 1: LayerNorm and RMSNorm both see x̂ = x
    eps = getattr(norm, "eps", None) or getattr(norm, "variance_epsilon", 0.0)
    empirical = (norm(x) - norm(-x))[0] / (2 * x[0]) * (1 + eps) ** 0.5
    assert torch.allclose(arch.norm_gain(norm), empirical, atol=1e-4)


def test_final_norm_and_views_write_through(lm):
    fn = arch.final_norm(lm.model, lm.layers_path)
    assert (fn is None) == arch.post_ln(lm.model)
    _, rows = arch.gate_rows(lm.layers[0])
    (_, first), *_ = arch.mlp_linears(lm.layers[0])
    before = first.weight.detach().clone()
    with torch.no_grad():
        rows[3] += 1.0
        changed = (first.weight.detach() - before).abs() > 0
        rows[3] -= 1.0
    assert int(changed.sum()) == lm.d_model  # exactly one neuron's input vector


def test_unknown_mlp_layout_is_one_clear_line():
    block = torch.nn.Module()
    block.mlp = torch.nn.Module()
    with pytest.raises(SaedetoxError, match="known layouts") as err:
        arch.mlp_linears(block)
    assert "\n" not in str(err.value)
