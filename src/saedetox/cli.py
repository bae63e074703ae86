"""The ``saedetox`` command line: a thin layer over the Python API.

Every command turns :class:`~saedetox.errors.SaedetoxError` into one ``error: ...`` line and
exit code 2; nothing a user can mistype produces a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated, Any

import typer

from saedetox.errors import SaedetoxError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False)

# ----------------------------------------------------------------------------- shared options

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="HF hub name, local model dir, or 'reference'.")]
DtypeOpt = Annotated[str, typer.Option("--dtype", help="auto | float32 | float16 | bfloat16.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto | cpu | cuda[:N].")]
SaeOpt = Annotated[
    str | None,
    typer.Option("--sae", help="SAE: release/sae_id (SAE-Lens registry), local SAE-Lens dir, or 'reference'."),
]
FeaturesOpt = Annotated[str | None, typer.Option("--features", help="Latents: 3,17,42 or a features.json file.")]
ModeOpt = Annotated[str, typer.Option("--mode", help="constant | conditional | token | clamp.")]
StrengthOpt = Annotated[float | None, typer.Option("--strength", help="Raw strength alpha.")]
TierOpt = Annotated[str | None, typer.Option("--tier", help="low | medium | high (calibrated to the residual norm).")]
HookOpt = Annotated[str | None, typer.Option("--hook", help="TL hook name (default: the SAE's own).")]
ThresholdOpt = Annotated[float, typer.Option("--threshold", help="Gate threshold tau (conditional/token).")]
ClampOpt = Annotated[float, typer.Option("--clamp-value", help="Value c for clamp mode.")]
PositionsOpt = Annotated[str, typer.Option("--positions", help="all | generated.")]
SpecOpt = Annotated[str | None, typer.Option("--spec", help="A steering spec file (YAML/JSON) instead of the flags.")]


@app.callback()
def _root() -> None:
    """saedetox: find toxicity latents in SAEs, steer them away, and measure what it costs."""


def _build_spec(
    sae: str | None,
    features: str | None,
    mode: str,
    strength: float | None,
    tier: str | None,
    hook: str | None,
    threshold: float,
    clamp_value: float,
    positions: str,
    spec_file: str | None,
    required: bool = True,
):
    from saedetox.spec import Intervention, SteeringSpec, parse_features

    if spec_file:
        return SteeringSpec.load(spec_file)
    if sae is None:
        if features or strength is not None or tier:
            raise SaedetoxError("Steering options need --sae (or --spec).")
        if required:
            raise SaedetoxError("Give --sae and --features (or --spec) to steer.")
        return None
    if not features:
        raise SaedetoxError("--sae needs --features (indices like 3,17 or a features.json file).")
    iv = Intervention(
        sae=sae,
        latents=parse_features(features),
        hook=hook,
        mode=mode,
        strength=strength,
        tier=tier,
        threshold=threshold,
        clamp_value=clamp_value,
        positions=positions,
    )
    return SteeringSpec([iv]).validate()


def _load(model: str, dtype: str, device: str):
    from saedetox.models import load_model

    return load_model(model, dtype=dtype, device=device)


# ----------------------------------------------------------------------------- info


@app.command("info")
def info_cmd(
    model: ModelOpt = "reference",
    sae: SaeOpt = None,
    hook: HookOpt = None,
    dtype: DtypeOpt = "auto",
    device: DeviceOpt = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Model (and SAE) summary with the SAE preflight: fit, explained variance, CE-loss change."""
    from saedetox.preflight import preflight
    from saedetox.saes import load_sae

    lm = _load(model, dtype, device)
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


# ----------------------------------------------------------------------------- generate


@app.command("generate")
def generate_cmd(
    model: ModelOpt = "reference",
    prompt: Annotated[list[str] | None, typer.Option("--prompt", "-p", help="Prompt text (repeatable).")] = None,
    prompts_file: Annotated[str | None, typer.Option("--prompts", help="File of prompts (txt/jsonl/csv).")] = None,
    field: Annotated[str, typer.Option("--field", help="Field/column for jsonl/csv prompt files.")] = "text",
    sae: SaeOpt = None,
    features: FeaturesOpt = None,
    mode: ModeOpt = "constant",
    strength: StrengthOpt = None,
    tier: TierOpt = None,
    hook: HookOpt = None,
    threshold: ThresholdOpt = 0.0,
    clamp_value: ClampOpt = 0.0,
    positions: PositionsOpt = "all",
    spec: SpecOpt = None,
    n_samples: Annotated[int, typer.Option("--n-samples", "-n")] = 1,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens")] = 20,
    top_p: Annotated[float, typer.Option("--top-p")] = 0.9,
    temperature: Annotated[float, typer.Option("--temperature")] = 1.0,
    greedy: Annotated[bool, typer.Option("--greedy", help="Greedy decoding instead of sampling.")] = False,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    out: Annotated[str | None, typer.Option("--out", help="Write samples as JSONL here.")] = None,
    dtype: DtypeOpt = "auto",
    device: DeviceOpt = "auto",
) -> None:
    """Sample continuations, steered or not."""
    from saedetox.data import read_texts
    from saedetox.sampling import SamplingConfig, sample
    from saedetox.steering import Steerer

    texts = list(prompt or [])
    if prompts_file:
        texts += read_texts(prompts_file, field)
    if not texts:
        raise SaedetoxError("Give at least one --prompt or a --prompts file.")
    if any(not t.strip() for t in texts):
        raise SaedetoxError("Empty prompt: every prompt must contain some text.")
    steering = _build_spec(sae, features, mode, strength, tier, hook, threshold, clamp_value, positions, spec, False)
    lm = _load(model, dtype, device)
    steerer = Steerer(lm, steering) if steering else None
    cfg = SamplingConfig(
        n_samples=n_samples,
        max_new_tokens=max_new_tokens,
        top_p=top_p,
        temperature=temperature,
        do_sample=not greedy,
        seed=seed,
        prepend_bos=True,
    )
    results = sample(lm, texts, cfg, steerer)
    rows = [
        {"prompt": texts[i], "sample": s.sample_index, "continuation": s.text}
        for i, group in enumerate(results)
        for s in group
    ]
    if out:
        from saedetox.io import atomic_write_text

        atomic_write_text(out, "".join(json.dumps(r) + "\n" for r in rows))
        typer.echo(f"wrote {len(rows)} samples to {out}", err=True)
    else:
        for r in rows:
            typer.echo(f"{r['prompt']}\u2502{r['continuation']}")


# ----------------------------------------------------------------------------- export


@app.command("export")
def export_cmd(
    out: Annotated[str, typer.Option("--out", help="Output HF model directory.")],
    model: ModelOpt = "reference",
    sae: SaeOpt = None,
    features: FeaturesOpt = None,
    mode: ModeOpt = "constant",
    strength: StrengthOpt = None,
    tier: TierOpt = None,
    hook: HookOpt = None,
    threshold: ThresholdOpt = 0.0,
    clamp_value: ClampOpt = 0.0,
    positions: PositionsOpt = "all",
    spec: SpecOpt = None,
    save_dtype: Annotated[
        str, typer.Option("--save-dtype", help="auto (as loaded) | float32 | float16 | bfloat16.")
    ] = "auto",
    dtype: DtypeOpt = "float32",
    device: DeviceOpt = "cpu",
) -> None:
    """Fold constant steering into the weights: a plain HF checkpoint, no saedetox needed to serve it."""
    from saedetox.export import export
    from saedetox.models import _dtype

    steering = _build_spec(sae, features, mode, strength, tier, hook, threshold, clamp_value, positions, spec)
    lm = _load(model, dtype, device)
    save = None if save_dtype == "auto" else _dtype(save_dtype, lm.device)
    path = export(lm, steering, out, dtype=save)
    typer.echo(f"wrote {path}")


# ----------------------------------------------------------------------------- train-lm


@app.command("train-lm")
def train_lm_cmd(
    out: Annotated[str, typer.Option("--out", help="Output HF model directory.")],
    data_dir: Annotated[
        str | None, typer.Option("--data-dir", help="Dataset folder (default: $SAEDETOX_DATA, ../shared/data).")
    ] = None,
    max_tokens: Annotated[int, typer.Option(help="Training tokens.")] = 16_000_000,
    n_embd: int = 256,
    n_layer: int = 6,
    n_head: int = 4,
    vocab_size: int = 8192,
    seed: int = 0,
    device: DeviceOpt = "auto",
    compile: Annotated[bool, typer.Option(help="torch.compile the training step.")] = True,
) -> None:
    """Train the reference world's tokenizer and GPT-2 model (resumes from OUT/checkpoints)."""
    from saedetox.train.lm import LMTrainConfig, train_lm

    cfg = LMTrainConfig(
        out=out,
        data_dir=data_dir,
        max_tokens=max_tokens,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        vocab_size=vocab_size,
        seed=seed,
        device=device,
        compile=compile,
    )
    typer.echo(f"wrote {train_lm(cfg)}")


# ----------------------------------------------------------------------------- demo


@app.command("demo")
def demo_cmd(out: Annotated[str, typer.Option("--out", help="Output folder.")] = "demo_out") -> None:
    """The whole pipeline on the committed reference world, offline."""
    from saedetox.demo import run_demo

    run_demo(out)


# ----------------------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line and exit code 2, never a traceback."""
    import click

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except Exception:  # noqa: BLE001
        pass
    try:
        app(args=argv, standalone_mode=False, prog_name="saedetox")
    except SaedetoxError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(2)
    except click.exceptions.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        typer.echo("interrupted; rerun the same command to resume where it stopped.", err=True)
        sys.exit(130)
    except click.exceptions.Exit as ex:
        sys.exit(ex.exit_code)
    except Exception as err:  # noqa: BLE001
        if os.environ.get("SAEDETOX_DEBUG") == "1":
            raise
        first = str(err).splitlines()[0] if str(err) else ""
        typer.echo(f"error: {type(err).__name__}: {first} (set SAEDETOX_DEBUG=1 for the traceback)", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
