"""``saedetox export``: fold constant steering into the weights of a plain HF checkpoint.

Constant steering adds a fixed vector v to the residual stream at a hook. That equals adding v
to the output bias of the sub-block that writes the stream just before the hook:

| hook | folded into |
| --- | --- |
| ``blocks.0.hook_resid_pre`` | position embeddings (GPT-2) or every token embedding (others; ÷ the embedding scale) |
| ``blocks.L.hook_resid_pre`` (L > 0) | MLP output bias of block L−1 |
| ``blocks.L.hook_resid_post`` / ``hook_mlp_out`` | MLP output bias of block L |
| ``blocks.L.hook_attn_out`` | attention output bias of block L |

GPT-2 and GPT-NeoX have those biases. Llama has none by default, so the export turns on
``mlp_bias`` / ``attention_bias`` (zero-initialised everywhere but the folded slot), which
plain ``from_pretrained`` loads. Gemma-2 normalises every sub-block output and Mistral / Qwen2
MLPs have no bias option, so only ``blocks.0.hook_resid_pre`` folds exactly there; for other
hooks the export stops with that explanation.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoModelForCausalLM

from saedetox.errors import SaedetoxError
from saedetox.io import atomic_write_text
from saedetox.model import arch
from saedetox.model.load import LoadedModel, wrap_model
from saedetox.model.sites import HOOK_RE
from saedetox.sae.loaded import LoadedSAE
from saedetox.steering.resolve import Resolver
from saedetox.steering.spec import SteeringSpec


def _target(hook: str) -> tuple[int, str]:
    """(layer whose bias to use, 'embed' | 'mlp' | 'attn')."""
    m = HOOK_RE.match(hook)
    assert m is not None
    layer, kind = int(m.group(1)), m.group(2)
    if kind == "resid_pre":
        return (layer - 1, "mlp") if layer > 0 else (0, "embed")
    if kind == "attn_out":
        return layer, "attn"
    return layer, "mlp"


def _with_biases(lm: LoadedModel, need_mlp: bool, need_attn: bool) -> nn.Module:
    """Llama: a copy of the model rebuilt with mlp_bias / attention_bias on, biases zero."""
    cfg = copy.deepcopy(lm.model.config)
    if need_mlp:
        cfg.mlp_bias = True
    if need_attn:
        cfg.attention_bias = True
    new = AutoModelForCausalLM.from_config(cfg).to(lm.device, lm.dtype)
    missing, unexpected = new.load_state_dict(lm.model.state_dict(), strict=False)
    if unexpected or any(not k.endswith("bias") for k in missing):
        raise SaedetoxError("Could not rebuild the model with biases for export.")
    with torch.no_grad():
        for k in missing:
            new.get_parameter(k).zero_()
    return new


def _untie(model: nn.Module) -> None:
    """Give the LM head its own copy of tied embeddings, so editing the input side leaves logits alone."""
    out = model.get_output_embeddings()
    if out is not None and out.weight is model.get_input_embeddings().weight:
        out.weight = nn.Parameter(out.weight.detach().clone())
        model.config.tie_word_embeddings = False
        if hasattr(model.config, "get_text_config"):
            model.config.get_text_config().tie_word_embeddings = False


def constant_shift(
    lm: LoadedModel, spec: SteeringSpec, saes: dict[str, LoadedSAE] | None = None
) -> dict[str, torch.Tensor]:
    """Hook → the total constant shift a constant-mode spec adds there (for export and checks)."""
    spec.validate()
    resolver = Resolver(lm, saes)
    out: dict[str, torch.Tensor] = {}
    for r in (resolver.resolve(iv) for iv in spec.interventions):
        if r.spec.mode != "constant" or r.spec.positions != "all":
            raise SaedetoxError(
                f"Only constant steering at all positions can be folded into weights (got mode '{r.spec.mode}', "
                f"positions '{r.spec.positions}'); serve other modes with saedetox hooks."
            )
        out[r.hook] = out.get(r.hook, 0) + r.vector.float()
    return out


def fold(lm: LoadedModel, spec: SteeringSpec, saes: dict[str, LoadedSAE] | None = None) -> LoadedModel:
    """A new model (the input is left untouched) with the spec's constant steering in its weights."""
    shifts = constant_shift(lm, spec, saes)
    targets = {hook: _target(hook) for hook in shifts}
    family = lm.family
    inner = [kind for _, kind in targets.values() if kind != "embed"]
    if family in ("gpt2", "gpt_neox"):
        model = copy.deepcopy(lm.model)
    elif family == "llama" and lm.model.config.model_type == "llama":
        model = _with_biases(lm, "mlp" in inner, "attn" in inner) if inner else copy.deepcopy(lm.model)
    elif not inner:
        model = copy.deepcopy(lm.model)
    else:
        hooks = ", ".join(h for h, (_, k) in targets.items() if k != "embed")
        raise SaedetoxError(
            f"{lm.model.config.model_type} has no bias after the sub-block that writes {hooks} (its outputs are "
            "normalised or bias-free), so constant steering there cannot be folded exactly. Exact alternatives: "
            "steer at blocks.0.hook_resid_pre (folds into the embeddings), or serve the model with saedetox hooks."
        )
    wrapped = wrap_model(model, lm.tokenizer, name=f"{lm.name}+folded")
    with torch.no_grad():
        for hook, vec in shifts.items():
            layer, kind = targets[hook]
            v = vec.to(next(model.parameters()).dtype)
            if kind == "embed":
                positions = arch.absolute_position_embeddings(model)
                if positions is not None:
                    positions.weight.add_(v)
                else:
                    _untie(model)
                    emb = model.get_input_embeddings()
                    emb.weight.add_(v / arch.embedding_scale(model))
            else:
                block = wrapped.layers[layer]
                lin = arch.mlp_out_projection(block) if kind == "mlp" else arch.attn_out_projection(block)
                if getattr(lin, "bias", None) is None:
                    raise SaedetoxError(f"{type(lin).__name__} in block {layer} has no bias to fold into.")
                lin.bias.add_(v)
    return wrapped


def export(
    lm: LoadedModel,
    spec: SteeringSpec,
    out: str | Path,
    saes: dict[str, LoadedSAE] | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write a standard HF checkpoint with the steering folded in, plus a provenance file."""
    out = Path(out)
    folded = fold(lm, spec, saes)
    model = folded.model.to(dtype) if dtype is not None else folded.model
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    if lm.tokenizer is not None:
        lm.tokenizer.save_pretrained(out)
    meta: dict[str, Any] = {
        "source_model": lm.name,
        "steering": spec.to_dict(),
        "note": "Constant SAE steering folded into the weights by saedetox; load with from_pretrained.",
    }
    atomic_write_text(out / "saedetox_export.json", json.dumps(meta, indent=2))
    return out
