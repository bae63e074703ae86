"""Every per-architecture module lookup in one place.

Decoder layers are found by structure (the ``nn.ModuleList`` holding ``num_hidden_layers``
blocks), sub-blocks and projections by attribute name with class-name fallbacks, so GPT-2,
GPT-NeoX, Llama / Mistral / Qwen2 and Gemma / Gemma-2 work without a per-model table.
"""

from __future__ import annotations

import math

from torch import nn

from saedetox.errors import SaedetoxError

ATTN_NAMES = ("self_attn", "attn", "attention", "self_attention")
MLP_NAMES = ("mlp", "feed_forward", "ffn")
MLP_OUT_NAMES = ("c_proj", "dense_4h_to_h", "down_proj", "fc2", "fc_out")
MLP_IN_NAMES = ("gate_proj", "dense_h_to_4h", "fc1", "fc_in", "up_proj")
ATTN_OUT_NAMES = ("c_proj", "o_proj", "dense", "out_proj")

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
}


def family(model: nn.Module) -> str:
    """The model's family (``gpt2``, ``gpt_neox``, ``llama``, ``gemma``), else its HF model_type."""
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
    raise SaedetoxError(f"Hook '{hook}' is not available in this architecture ({type(block).__name__}).")


def mlp_out_projection(block: nn.Module) -> nn.Module:
    """The MLP's output projection (c_proj / down_proj / dense_4h_to_h): its *input* is the neuron activations."""
    mlp = getattr(block, "mlp", None)
    for name in MLP_OUT_NAMES:
        if mlp is not None and hasattr(mlp, name):
            return getattr(mlp, name)
    raise SaedetoxError(f"Could not find the MLP output projection in {type(block).__name__}.")


def mlp_in_weights(block: nn.Module) -> tuple[nn.Parameter, int]:
    """The MLP's input weights and the axis that indexes neurons (each neuron reads a d_model vector)."""
    mlp = block.mlp
    if hasattr(mlp, "c_fc"):  # GPT-2 Conv1D: weight [d_model, d_mlp]
        return mlp.c_fc.weight, 1
    for name in MLP_IN_NAMES:
        if hasattr(mlp, name):  # nn.Linear: weight [d_mlp, d_model]
            return getattr(mlp, name).weight, 0
    raise SaedetoxError(f"Could not find the MLP input weights in {type(block).__name__}.")


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
    """GPT-2's learned position embeddings (added to every residual stream), or ``None``."""
    return model.transformer.wpe if family(model) == "gpt2" else None


def embedding_scale(model: nn.Module) -> float:
    """What the model multiplies token embeddings by (Gemma: sqrt(d_model)), else 1."""
    cfg = model.config
    if getattr(cfg, "model_type", "").startswith("gemma"):
        return math.sqrt(cfg.hidden_size)
    return 1.0


def uses_layernorm(block: nn.Module) -> bool:
    """True for LayerNorm blocks (GPT-2, NeoX), False for RMSNorm ones (Llama, Gemma)."""
    return any(isinstance(m, nn.LayerNorm) for m in block.modules())
