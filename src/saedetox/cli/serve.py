"""``saedetox serve``: an OpenAI-compatible server (vLLM) that steers each request at the level it names."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

import typer

from saedetox.cli.fields import with_options
from saedetox.cli.options import DtypeOpt, ModelOpt, SteeringOptions, build_spec, load_lm
from saedetox.errors import SaedetoxError


@with_options
def serve_cmd(
    model: ModelOpt = "reference",
    steering: SteeringOptions = SteeringOptions(),
    levels: Annotated[
        str,
        typer.Option(
            "--levels",
            help="Named levels, comma-separated: off, a tier (low|medium|high), or NAME=TIER|FRACTION.",
        ),
    ] = "off,low,medium,high",
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000,
    dtype: DtypeOpt = "auto",
    vllm_arg: Annotated[
        list[str] | None, typer.Option("--vllm-arg", help="One more argument for vLLM's server (repeatable).")
    ] = None,
) -> None:
    """Serve the model with vLLM's OpenAI-compatible API; each request names its detox level.

    Example: saedetox serve --sae reference --features features.json --mode conditional --levels off,low,high
    """
    from saedetox.model.load import REFERENCE_NAME, reference_model_dir  # deferred: see saedetox.cli.app
    from saedetox.serving.engine import build_levels
    from saedetox.serving.server import ServerSettings, parse_levels, run_server
    from saedetox.steering.checkpoint import save_tokenizer

    if steering.tier is not None or steering.strength is not None:
        raise SaedetoxError(
            "serve sets each level's strength in --levels (e.g. off,low,high,max=0.8), not --tier/--strength."
        )
    named = parse_levels(levels)
    specs = {
        name: None if tier is None else build_spec(replace(steering, tier=tier, strength=None))
        for name, tier in named.items()
    }
    source = str(reference_model_dir()) if model == REFERENCE_NAME else model
    settings = ServerSettings(
        model=source, served_name=model, host=host, port=port, dtype=dtype, vllm_args=tuple(vllm_arg or ())
    )

    def write_levels(path):
        typer.echo("compiling the steering levels on the HF model ...", err=True)
        lm = load_lm(model, "float32" if dtype == "auto" else dtype, "cpu")
        build_levels(lm, specs, path)
        save_tokenizer(lm.tokenizer, path.parent / "tokenizer")  # text prompts get BOS as saedetox's sampler gives it
        del lm
        typer.echo(f"serving {model} on http://{host}:{port}/v1 with levels {', '.join(named)}", err=True)

    raise typer.Exit(run_server(settings, write_levels, list(named)))
