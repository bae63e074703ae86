"""``saedetox export``: fold constant steering into the weights of a plain HF checkpoint.

Constant steering adds a fixed vector v to the residual stream at a hook. That equals adding v
to the output bias of the sub-block that writes the stream just before the hook:

| hook | folded into |
| --- | --- |
| ``blocks.0.hook_resid_pre`` | position embeddings (GPT-2, OPT), else every token embedding (÷ embedding scale) |
| ``blocks.L.hook_resid_pre`` (L > 0) | MLP output bias of block L−1 (post-LN OPT: its final LayerNorm's bias) |
| ``blocks.L.hook_resid_post`` / ``hook_mlp_out`` | MLP output bias of block L (post-LN OPT resid_post: LN bias) |
| ``blocks.L.hook_attn_out`` | attention output bias of block L |

GPT-2, GPT-NeoX and OPT have those biases (OPT's ``fc2`` / ``out_proj``; a post-LN OPT block ends
in a LayerNorm whose bias adds to its output, so that is where resid hooks fold there). Llama
has none by default, so the export turns on ``mlp_bias`` / ``attention_bias`` (zero-initialised
everywhere but the folded slot), which plain ``from_pretrained`` loads. Gemma-2 normalises every
sub-block output and Mistral / Qwen2 / Phi-3 have no bias option, so only
``blocks.0.hook_resid_pre`` folds exactly there; for other hooks the export stops with that
explanation. ``saedetox_export.json`` records what was folded where and how it was computed
(hook, α, tier, median residual norm, latents, the SAE, the vector) so a folded checkpoint can
be audited without recalibrating.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoModelForCausalLM

from saedetox.errors import SaedetoxError
from saedetox.model import arch
from saedetox.model.load import LoadedModel, as_loaded_model, wrap_model
from saedetox.model.sites import HOOK_RE
from saedetox.sae.loaded import LoadedSAE
from saedetox.steering.checkpoint import save_checkpoint
from saedetox.steering.resolve import ResolvedIntervention, Resolver
from saedetox.steering.spec import SteeringSpec

FOLDS_EVERY_HOOK = ("gpt2", "gpt_neox", "opt")  # families whose sub-blocks end in a bias


def _target(hook: str, post_ln: bool) -> tuple[int, str]:
    """(layer whose bias to use, 'embed' | 'mlp' | 'attn' | 'post_norm')."""
    m = HOOK_RE.match(hook)
    assert m is not None
    layer, kind = int(m.group(1)), m.group(2)
    if kind == "resid_pre":
        if layer == 0:
            return 0, "embed"
        return layer - 1, "post_norm" if post_ln else "mlp"
    if kind == "resid_post":
        return layer, "post_norm" if post_ln else "mlp"
    return layer, "attn" if kind == "attn_out" else "mlp"


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


def resolve_constant(
    lm: LoadedModel, spec: SteeringSpec, saes: dict[str, LoadedSAE] | None = None
) -> list[ResolvedIntervention]:
    """The spec's interventions resolved, refusing anything that is not constant steering at all positions."""
    spec = spec.validate()
    resolver = Resolver(lm, saes)
    out = [resolver.resolve(iv) for iv in spec.interventions]
    for r in out:
        if r.spec.mode != "constant" or r.spec.positions != "all":
            raise SaedetoxError(
                f"Only constant steering at all positions can be folded into weights (got mode '{r.spec.mode}', "
                f"positions '{r.spec.positions}'); serve other modes with saedetox hooks."
            )
    return out


def constant_shift(
    lm: LoadedModel, spec: SteeringSpec, saes: dict[str, LoadedSAE] | None = None
) -> dict[str, torch.Tensor]:
    """Hook → the total constant shift a constant-mode spec adds there (for export and checks)."""
    out: dict[str, torch.Tensor] = {}
    for r in resolve_constant(lm, spec, saes):
        out[r.hook] = out.get(r.hook, 0) + r.vector.float()
    return out


def _fold_parameter(model: nn.Module, wrapped: LoadedModel, layer: int, kind: str) -> tuple[torch.Tensor, float]:
    """(the parameter a shift is added to, the factor the shift is divided by first)."""
    if kind == "embed":
        positions = arch.absolute_position_embeddings(model)
        if positions is not None:
            return positions.weight, 1.0
        _untie(model)
        return model.get_input_embeddings().weight, arch.embedding_scale(model)
    block = wrapped.layers[layer]
    if kind == "post_norm":
        lin: nn.Module = block.final_layer_norm
    else:
        lin = arch.mlp_out_projection(block) if kind == "mlp" else arch.attn_out_projection(block)
    if getattr(lin, "bias", None) is None:
        raise SaedetoxError(f"{type(lin).__name__} in block {layer} has no bias to fold into.")
    return lin.bias, 1.0


def fold_with_record(
    lm: LoadedModel, spec: SteeringSpec, saes: dict[str, LoadedSAE] | None = None
) -> tuple[LoadedModel, list[ResolvedIntervention], list[dict[str, Any]]]:
    """A new model with the spec's constant steering in its weights, the resolved interventions, and what went where."""
    resolved = resolve_constant(lm, spec, saes)
    shifts: dict[str, torch.Tensor] = {}
    for r in resolved:
        shifts[r.hook] = shifts.get(r.hook, 0) + r.vector.float()
    post_ln = arch.post_ln(lm.model)
    targets = {hook: _target(hook, post_ln) for hook in shifts}
    inner = [kind for _, kind in targets.values() if kind != "embed"]
    if lm.family in FOLDS_EVERY_HOOK:
        model = copy.deepcopy(lm.model)
    elif lm.family == "llama" and lm.model.config.model_type == "llama":
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
    record = []
    with torch.no_grad():
        for hook, vec in shifts.items():
            param, scale = _fold_parameter(model, wrapped, *targets[hook])
            param.add_((vec / scale).to(param.dtype))
            names = {id(p): n for n, p in model.named_parameters()}
            record.append(
                {"hook": hook, "parameter": names[id(param)], "divided_by": scale, "shift": vec.cpu().tolist()}
            )
    return wrapped, resolved, record


def fold(lm: LoadedModel, spec: SteeringSpec, saes: dict[str, LoadedSAE] | None = None) -> LoadedModel:
    """A new model (the input is left untouched) with the spec's constant steering in its weights."""
    return fold_with_record(lm, spec, saes)[0]


def provenance(resolved: list[ResolvedIntervention]) -> list[dict[str, Any]]:
    """Per intervention: everything needed to recompute its shift −α Σ û_f without recalibrating."""
    out = []
    for r in resolved:
        out.append(
            {
                "hook": r.hook,
                "mode": r.spec.mode,
                "alpha": r.alpha,
                "tier": r.spec.tier,
                "strength": r.spec.strength,
                "median_norm": r.median_norm,
                "latents": list(r.spec.latents),
                "sae": r.spec.sae_name,
                "sae_info": r.sae.info() if r.sae is not None else None,
                "vector_source": "sae decoder"
                if r.spec.vector is None
                else f"raw vector ({r.spec.label or 'unlabelled'})",
                "rule": "shift = -alpha * sum_f W_dec[f] / ||W_dec[f]||"
                if r.spec.vector is None
                else "shift = -alpha * vector",
                "shift_norm": float(r.vector.float().norm()),
            }
        )
    return out


def export(
    lm: LoadedModel,
    spec: SteeringSpec,
    out: str | Path,
    saes: dict[str, LoadedSAE] | None = None,
    dtype: torch.dtype | None = None,
    overwrite: bool = False,
    vector_provenance: dict[str, Any] | None = None,
    max_shard_size: str | int | None = None,
) -> Path:
    """Write a standard HF checkpoint with the steering folded in, plus ``saedetox_export.json`` (provenance).

    Atomic: the folder appears whole or not at all; a non-empty ``out`` is refused unless
    ``overwrite`` (then replaced whole). ``vector_provenance`` describes where a raw (baseline)
    vector came from.
    """
    spec, lm = spec.validate(), as_loaded_model(lm)
    folded, resolved, record = fold_with_record(lm, spec, saes)
    meta: dict[str, Any] = {
        "kind": "steering",
        "source_model": lm.name,
        "steering": spec.to_dict(),
        "interventions": provenance(resolved),
        "folded": record,
        "note": "Constant steering folded into the weights by saedetox; load with from_pretrained.",
    }
    if vector_provenance is not None:
        meta["vector_provenance"] = vector_provenance
    return save_checkpoint(
        folded.model, lm.tokenizer, out, meta, overwrite, dtype, source=lm.name, max_shard_size=max_shard_size
    )
