"""``saedetox export``: fold constant steering (or a weight-level baseline) into a plain HF checkpoint."""

from __future__ import annotations

from typing import Annotated

import typer

from saedetox.cli.fields import Choices, Fields, with_options
from saedetox.cli.options import (
    DataDirOpt,
    DeviceOpt,
    DtypeOpt,
    ModelOpt,
    SteeringOptions,
    build_spec,
    load_lm,
)
from saedetox.errors import SaedetoxError
from saedetox.methods.registry import STEERED, export_modes, exportable_methods, get_method  # light


@with_options
def export_cmd(
    out: Annotated[str, typer.Option("--out", help="Output HF model directory.")],
    model: ModelOpt = "reference",
    method: Annotated[
        str,
        typer.Option("--method", help="What to fold: sae (the steering options), or a baseline (--tier/--strength)."),
        Choices(exportable_methods),
    ] = STEERED,
    steering: Annotated[SteeringOptions, Fields(choices={"mode": export_modes})] = SteeringOptions(),
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
    """Fold constant steering into the weights: a plain HF checkpoint, no saedetox needed to serve it.

    Example: saedetox export --out detox-model --sae reference --features features.json --tier medium
    """
    from saedetox.io import check_output_dir  # deferred: see saedetox.cli.app
    from saedetox.model.load import parse_dtype
    from saedetox.steering.checkpoint import TargetNotEmpty

    info = get_method(method)
    if info.export is None or (info.modes and steering.mode not in info.export_modes):
        raise SaedetoxError(f"Cannot export method '{method}': use {', '.join(exportable_methods())}.")
    spec = build_spec(steering) if "spec" in info.needs else None
    check_output_dir(out)  # before the model is loaded
    lm = load_lm(model, dtype, device)
    save = None if save_dtype == "auto" else parse_dtype(save_dtype, lm.device)
    try:
        own = {} if spec is not None else {"hook": steering.hook, "tier": steering.tier, "strength": steering.strength}
        path = info.export(lm, out, spec=spec, data_dir=data_dir, overwrite=overwrite, dtype=save, **own)
    except TargetNotEmpty as err:
        raise SaedetoxError(f"{err} (--overwrite)") from None
    typer.echo(f"wrote {path}")
