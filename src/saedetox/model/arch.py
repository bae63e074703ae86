"""Every per-architecture module lookup in one place.

Decoder layers are found by structure (the ``nn.ModuleList`` holding ``num_hidden_layers``
blocks), sub-blocks and projections by attribute name with class-name fallbacks, so GPT-2,
GPT-NeoX, Llama / Mistral / Qwen2, Gemma / Gemma-2, Phi-3 and OPT work without a per-model
table. The MLP tables below (:data:`MLP_LINEARS`, :func:`gate_rows`, :func:`mlp_input_norm`)
are what the weight-level baselines (AurA, Model Surgery) read and edit.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from saedetox.errors import SaedetoxError

ATTN_NAMES = ("self_attn", "attn", "attention", "self_attention")
MLP_NAMES = ("mlp", "feed_forward", "ffn")
MLP_OUT_NAMES = ("c_proj", "dense_4h_to_h", "down_proj", "fc2", "fc_out")
ATTN_OUT_NAMES = ("c_proj", "o_proj", "dense", "out_proj")
FINAL_NORM_NAMES = ("ln_f", "norm", "final_layer_norm", "final_norm")

# HF model_type -> the family saedetox treats it as
FAMILIES = {
    "gpt2": "gpt2",
    "gpt_neox": "gpt_neox",
    "llama": "llama",
    "mistral": "llama",
    "qwen2": "llama",
    "qwen3": "llama",
    "gemma": "gemma",
    "gemma2": "gemma",
    "gemma3_text": "gemma",
    "phi3": "phi3",
    "opt": "opt",
}

# Every linear layer of a block's MLP, by attribute path from the block, per MLP layout (the first
# layout whose modules all exist is used). GPT-2: c_fc + c_proj as in AurA's published config; the
# rest are the analogue (all of the MLP's linear layers).
MLP_LINEARS: tuple[tuple[str, ...], ...] = (
    ("mlp.c_fc", "mlp.c_proj"),  # GPT-2 (Conv1D)
    ("mlp.dense_h_to_4h", "mlp.dense_4h_to_h"),  # GPT-NeoX
    ("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"),  # Llama, Mistral, Qwen2, Gemma(-2)
    ("mlp.gate_up_proj", "mlp.down_proj"),  # Phi-3 (fused gate/up: units [0, m) gate, [m, 2m) up)
    ("fc1", "fc2"),  # OPT: the MLP sits on the decoder layer, no .mlp
)


def family(model: nn.Module) -> str:
    """The model's family (``gpt2``, ``gpt_neox``, ``llama``, ``gemma``, ``phi3``, ``opt``), else its HF model_type."""
    mt = getattr(model.config, "model_type", "unknown")
    return FAMILIES.get(mt, mt)


def find_layers(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The ModuleList of decoder layers, found by structure."""
    n = getattr(model.config, "num_hidden_layers", None) or getattr(model.config, "n_layer", None)
    best: tuple[str, nn.ModuleList] | None = None
    for path, mod in model.named_modules():
        if isinstance(mod, nn.ModuleList) and len(mod) == n and len(mod) > 0:
            if any(True for _ in mod[0].children()):
                if best is None or path.count(".") < best[0].count("."):
                    best = (path, mod)
    if best is None:
        raise SaedetoxError(
            f"Could not find the decoder layers of {type(model).__name__}; it is not a supported causal LM."
        )
    return best


def _get(root: nn.Module, path: str) -> nn.Module | None:
    mod: nn.Module | None = root
    for part in path.split("."):
        mod = getattr(mod, part, None)
        if not isinstance(mod, nn.Module):
            return None
    return mod


def sub_block_output(block: nn.Module, kind: str, hook: str) -> nn.Module:
    """The module whose output is what the attention (``attn_out``) or MLP (``mlp_out``) sub-block adds."""
    children = dict(block.named_children())
    if "pre_feedforward_layernorm" in children:  # Gemma-2/3 sandwich norms: output after the post-norm
        name = "post_attention_layernorm" if kind == "attn_out" else "post_feedforward_layernorm"
        if name in children:
            return children[name]
    names = ATTN_NAMES if kind == "attn_out" else MLP_NAMES
    for name in names:
        if name in children:
            return children[name]
    token = "attention" if kind == "attn_out" else "mlp"
    for child in children.values():
        if token in type(child).__name__.lower():
            return child
    raise SaedetoxError(
        f"Hook '{hook}' is not available in this architecture: {type(block).__name__} has no "
        f"{'attention' if kind == 'attn_out' else 'MLP'} sub-block module whose output is what it adds."
    )


def mlp_out_projection(block: nn.Module) -> nn.Module:
    """The MLP's output projection (c_proj / down_proj / dense_4h_to_h / OPT's fc2 on the layer)."""
    for path in (*(f"mlp.{n}" for n in MLP_OUT_NAMES), "fc2"):
        mod = _get(block, path)
        if mod is not None:
            return mod
    raise SaedetoxError(f"Could not find the MLP output projection in {type(block).__name__}.")


def mlp_linears(block: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every linear layer of the block's MLP, ``[(path from the block, module)]`` (see :data:`MLP_LINEARS`)."""
    for layout in MLP_LINEARS:
        mods = [_get(block, p) for p in layout]
        if all(m is not None for m in mods):
            return list(zip(layout, mods, strict=True))  # type: ignore[arg-type]
    raise SaedetoxError(
        f"Could not find the MLP's linear layers in {type(block).__name__} (known layouts: "
        f"{'; '.join(' + '.join(layout) for layout in MLP_LINEARS)})."
    )


def gate_rows(block: nn.Module) -> tuple[str, torch.Tensor]:
    """The MLP's per-neuron input weights as a writable ``[d_mlp, d_model]`` view, and what it is.

    One row per neuron, the vector the neuron reads from the (normalised) residual stream: the
    gate projection of gated MLPs (Phi-3: the gate half of the fused ``gate_up_proj``), else the
    only input projection (GPT-2 ``c_fc``: the columns of its Conv1D weight; NeoX
    ``dense_h_to_4h``; OPT ``fc1``). In-place changes to the view change the model.
    """
    (path, first), *_ = mlp_linears(block)
    w = first.weight.detach()  # type: ignore[union-attr]
    if path == "mlp.c_fc":  # Conv1D weight [d_model, d_mlp]
        return "mlp.c_fc.weight (columns)", w.T
    if path == "mlp.gate_up_proj":
        m = w.shape[0] // 2
        return f"mlp.gate_up_proj.weight[:{m}] (gate half)", w[:m]
    return f"{path}.weight", w


def mlp_input_norm(block: nn.Module, model: nn.Module) -> nn.Module:
    """The norm whose output the MLP reads (its gain multiplies what every gate row sees)."""
    if family(model) == "opt":  # pre-LN: final_layer_norm before fc1; post-LN (opt-350m): the attention's
        name = "final_layer_norm" if getattr(model.config, "do_layer_norm_before", True) else "self_attn_layer_norm"
    else:
        names = ("pre_feedforward_layernorm", "ln_2", "post_attention_layernorm")
        name = next((n for n in names if isinstance(getattr(block, n, None), nn.Module)), "")
    mod = getattr(block, name, None) if name else None
    if not isinstance(mod, nn.Module):
        raise SaedetoxError(f"Could not find the norm in front of the MLP in {type(block).__name__}.")
    return mod


def norm_gain(norm: nn.Module) -> torch.Tensor:
    """The per-channel gain a LayerNorm / RMSNorm multiplies its normalised input by (Gemma: 1 + w)."""
    w = getattr(norm, "weight", None)
    if w is None:
        size = getattr(norm, "normalized_shape", None) or (getattr(norm, "hidden_size", 0),)
        return torch.ones(int(size[0]))
    gain = w.detach().float().cpu()
    return 1.0 + gain if type(norm).__name__.lower().startswith("gemma") else gain


def final_norm(model: nn.Module, layers_path: str) -> nn.Module | None:
    """The norm applied after the last decoder layer (``ln_f`` / ``norm`` / ``final_layer_norm``), or None."""
    parent = _get(model, layers_path.rsplit(".", 1)[0]) if "." in layers_path else model
    for name in FINAL_NORM_NAMES:
        mod = getattr(parent, name, None)
        if isinstance(mod, nn.Module):
            return mod
    return None


def attn_out_projection(block: nn.Module) -> nn.Module:
    """The attention sub-block's output projection (c_proj / o_proj / dense / out_proj)."""
    for attn_name in ("attn", "self_attn", "attention"):
        attn = getattr(block, attn_name, None)
        if attn is None:
            continue
        for name in ATTN_OUT_NAMES:
            if hasattr(attn, name):
                return getattr(attn, name)
    raise SaedetoxError(f"Could not find the attention output projection in {type(block).__name__}.")


def absolute_position_embeddings(model: nn.Module) -> nn.Embedding | None:
    """Learned position embeddings added to every residual stream (GPT-2 ``wpe``, OPT ``embed_positions``)."""
    fam = family(model)
    if fam == "gpt2":
        return model.transformer.wpe
    if fam == "opt":
        return model.model.decoder.embed_positions
    return None


def post_ln(model: nn.Module) -> bool:
    """True for post-LN blocks (OPT with ``do_layer_norm_before=False``, e.g. opt-350m): a block's output is normed."""
    return family(model) == "opt" and not getattr(model.config, "do_layer_norm_before", True)


def embedding_scale(model: nn.Module) -> float:
    """What the model multiplies token embeddings by (Gemma: sqrt(d_model)), else 1."""
    cfg = model.config
    if getattr(cfg, "model_type", "").startswith("gemma"):
        return math.sqrt(cfg.hidden_size)
    return 1.0


def uses_layernorm(block: nn.Module) -> bool:
    """True for LayerNorm blocks (GPT-2, NeoX, OPT), False for RMSNorm ones (Llama, Gemma, Phi-3)."""
    return any(isinstance(m, nn.LayerNorm) for m in block.modules())
