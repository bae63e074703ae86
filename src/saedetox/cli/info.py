"""``saedetox info``: model summary, and the SAE preflight when an SAE is given."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from saedetox.cli.options import DeviceOpt, DtypeOpt, HookOpt, ModelOpt, SaeOpt, load_lm


def info_cmd(
    model: ModelOpt = "reference",
    sae: SaeOpt = None,
    hook: HookOpt = None,
    dtype: DtypeOpt = "auto",
    device: DeviceOpt = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Model (and SAE) summary with the SAE preflight: fit, explained variance, CE-loss change."""
    from saedetox.sae.load import load_sae  # deferred: see saedetox.cli.app
    from saedetox.sae.preflight import preflight

    lm = load_lm(model, dtype, device)
    out: dict[str, Any] = {
        "model": lm.name,
        "family": lm.family,
        "layers": lm.n_layers,
        "d_model": lm.d_model,
        "vocab": int(lm.model.config.vocab_size),
        "params": sum(p.numel() for p in lm.model.parameters()),
        "norm": "LayerNorm" if lm.uses_layernorm else "RMSNorm",
        "layers_path": lm.layers_path,
        "hooks": f"blocks.{{0..{lm.n_layers - 1}}}.hook_{{resid_pre,resid_post,attn_out,mlp_out}}",
    }
    if sae:
        s = load_sae(sae, device=lm.device, model_uses_layernorm=lm.uses_layernorm)
        out["sae"] = s.info()
        out["preflight"] = preflight(lm, s, hook=hook).to_dict()
    if as_json:
        typer.echo(json.dumps(out, indent=2))
        return
    for key, value in out.items():
        if isinstance(value, dict):
            typer.echo(f"{key}:")
            for k, v in value.items():
                typer.echo(f"  {k}: {round(v, 4) if isinstance(v, float) else v}")
        else:
            typer.echo(f"{key}: {value}")
