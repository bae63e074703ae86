"""``saedetox info``: model summary, and the SAE preflight when an SAE is given."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from saedetox.cli.options import DeviceOpt, DtypeOpt, HookOpt, ModelOpt, SaeOpt, load_lm


def hook_pattern(names: list[str], n_layers: int) -> str:
    """Hook names in brace form: ``blocks.{0..N}.hook_{a,b}`` for the kinds every layer has, plus any others."""
    kinds: dict[str, list[int]] = {}
    for name in names:
        layer, kind = name.split(".")[1], name.split(".hook_")[1]
        kinds.setdefault(kind, []).append(int(layer))
    full = [k for k, layers in kinds.items() if layers == list(range(n_layers))]
    parts = [f"blocks.{{0..{n_layers - 1}}}.hook_{{{','.join(full)}}}"] if full else []
    parts += [f"blocks.{{{','.join(map(str, kinds[k]))}}}.hook_{k}" for k in kinds if k not in full]
    return "; ".join(parts) or "none"


def info_cmd(
    model: ModelOpt = "reference",
    sae: SaeOpt = None,
    hook: HookOpt = None,
    dtype: DtypeOpt = "auto",
    device: DeviceOpt = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Model (and SAE) summary with the SAE preflight: fit, explained variance, CE-loss change.

    Example: saedetox info --model reference --sae reference
    """
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
        "hooks": hook_pattern(lm.hook_names(), lm.n_layers),  # only hooks that resolve on this model
    }
    if sae:
        s = load_sae(sae, lm)
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
