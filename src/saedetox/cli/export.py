"""``saedetox export``: fold constant steering into the weights of a plain HF checkpoint."""

from __future__ import annotations

from typing import Annotated

import typer

from saedetox.cli.options import DeviceOpt, DtypeOpt, ModelOpt, SteeringOptions, build_spec, load_lm, steering_options


@steering_options
def export_cmd(
    out: Annotated[str, typer.Option("--out", help="Output HF model directory.")],
    model: ModelOpt = "reference",
    steering: SteeringOptions = SteeringOptions(),
    save_dtype: Annotated[
        str, typer.Option("--save-dtype", help="auto (as loaded) | float32 | float16 | bfloat16.")
    ] = "auto",
    dtype: DtypeOpt = "float32",
    device: DeviceOpt = "cpu",
) -> None:
    """Fold constant steering into the weights: a plain HF checkpoint, no saedetox needed to serve it."""
    from saedetox.io import check_output_dir
    from saedetox.model.load import parse_dtype  # deferred: see saedetox.cli.app
    from saedetox.steering.export import export

    spec = build_spec(steering)
    check_output_dir(out)  # before the model is loaded
    lm = load_lm(model, dtype, device)
    save = None if save_dtype == "auto" else parse_dtype(save_dtype, lm.device)
    path = export(lm, spec, out, dtype=save)
    typer.echo(f"wrote {path}")
