"""``saedetox export``: fold constant steering (or a weight-level baseline) into a plain HF checkpoint."""

from __future__ import annotations

from typing import Annotated

import typer

from saedetox.cli.options import (
    DataDirOpt,
    DeviceOpt,
    DtypeOpt,
    ModelOpt,
    SteeringOptions,
    build_spec,
    load_lm,
    steering_options,
)
from saedetox.errors import SaedetoxError


@steering_options
def export_cmd(
    out: Annotated[str, typer.Option("--out", help="Output HF model directory.")],
    model: ModelOpt = "reference",
    method: Annotated[
        str, typer.Option("--method", help="sae (the steering options) | meandiff | surgery (--tier/--strength).")
    ] = "sae",
    steering: SteeringOptions = SteeringOptions(),
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a non-empty --out folder (atomically).")
    ] = False,
    save_dtype: Annotated[
        str, typer.Option("--save-dtype", help="auto (as loaded) | float32 | float16 | bfloat16.")
    ] = "auto",
    data_dir: DataDirOpt = None,
    dtype: DtypeOpt = "float32",
    device: DeviceOpt = "cpu",
) -> None:
    """Fold constant steering into the weights: a plain HF checkpoint, no saedetox needed to serve it."""
    from saedetox.io import check_output_dir
    from saedetox.methods.export import export_baseline  # deferred: see saedetox.cli.app
    from saedetox.model.load import parse_dtype
    from saedetox.steering.checkpoint import TargetNotEmpty
    from saedetox.steering.export import export

    if method not in ("sae", "meandiff", "surgery"):
        raise SaedetoxError(f"Cannot export method '{method}': use sae, meandiff or surgery.")
    spec = build_spec(steering) if method == "sae" else None
    check_output_dir(out)  # before the model is loaded
    lm = load_lm(model, dtype, device)
    save = None if save_dtype == "auto" else parse_dtype(save_dtype, lm.device)
    try:
        if spec is not None:
            path = export(lm, spec, out, dtype=save, overwrite=overwrite)
        else:
            tier, strength = steering.tier, steering.strength
            path = export_baseline(
                lm, method, out, steering.hook, tier, strength, data_dir=data_dir, overwrite=overwrite, dtype=save
            )
    except TargetNotEmpty as err:
        raise SaedetoxError(f"{err} (--overwrite)") from None
    typer.echo(f"wrote {path}")
