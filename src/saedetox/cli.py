"""The ``saedetox`` command line: a thin layer over the Python API.

Every command turns :class:`~saedetox.errors.SaedetoxError` into one ``error: ...`` line and
exit code 2; nothing a user can mistype produces a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
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
TierOpt = Annotated[
    str | None, typer.Option("--tier", help="low | medium | high, or a fraction of the median residual norm.")
]
HookOpt = Annotated[str | None, typer.Option("--hook", help="TL hook name (default: the SAE's own).")]
ThresholdOpt = Annotated[
    str, typer.Option("--threshold", help="Gate tau (conditional/token): a number, or auto = features.json gates.")
]
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
    threshold: str | float,
    clamp_value: float,
    positions: str,
    spec_file: str | None,
    required: bool = True,
):
    from saedetox.discover.features import parse_features
    from saedetox.steering.spec import Intervention, SteeringSpec, parse_threshold

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
    tau, taus = parse_threshold(threshold, features, mode)
    iv = Intervention(
        sae=sae,
        latents=parse_features(features),
        hook=hook,
        mode=mode,
        strength=strength,
        tier=tier,
        threshold=tau,
        thresholds=taus,
        clamp_value=clamp_value,
        positions=positions,
    )
    return SteeringSpec([iv]).validate()


def _load(model: str, dtype: str, device: str):
    from saedetox.model.load import load_model

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
    from saedetox.sae.load import load_sae
    from saedetox.sae.preflight import preflight

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
    threshold: ThresholdOpt = "auto",
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
    from saedetox.data.readers import read_texts
    from saedetox.eval.sampling import SamplingConfig, sample
    from saedetox.steering.steerer import Steerer

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
    threshold: ThresholdOpt = "auto",
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
    from saedetox.model.load import parse_dtype
    from saedetox.steering.export import export

    steering = _build_spec(sae, features, mode, strength, tier, hook, threshold, clamp_value, positions, spec)
    lm = _load(model, dtype, device)
    save = None if save_dtype == "auto" else parse_dtype(save_dtype, lm.device)
    path = export(lm, steering, out, dtype=save)
    typer.echo(f"wrote {path}")


# ----------------------------------------------------------------------------- discover


@app.command("discover")
def discover_cmd(
    out: Annotated[str, typer.Option("--out", help="Where to write features.json.")] = "features.json",
    model: ModelOpt = "reference",
    sae: Annotated[str, typer.Option("--sae", help="SAE (release/id, local dir, 'reference').")] = "reference",
    method: Annotated[
        str, typer.Option("--method", help="attribution|auroc|paired|meandiff|freqratio|paper-max|paper-freq")
    ] = "attribution",
    k: Annotated[int, typer.Option("--k", help="How many latents to select.")] = 10,
    min_auroc: Annotated[float, typer.Option("--min-auroc", help="Minimum held-out AUROC per latent.")] = 0.6,
    pairs: Annotated[str | None, typer.Option("--pairs", help="ParaDetox-style TSV (toxic, neutral1).")] = None,
    toxic: Annotated[str | None, typer.Option("--toxic", help="Toxic texts (txt/jsonl/csv).")] = None,
    clean: Annotated[str | None, typer.Option("--clean", help="Clean texts (txt/jsonl/csv).")] = None,
    heldout_toxic: Annotated[str | None, typer.Option("--heldout-toxic")] = None,
    heldout_clean: Annotated[str | None, typer.Option("--heldout-clean")] = None,
    field: Annotated[str, typer.Option("--field", help="Field/column for jsonl/csv files.")] = "text",
    hook: HookOpt = None,
    data_dir: Annotated[str | None, typer.Option("--data-dir")] = None,
    dtype: DtypeOpt = "auto",
    device: DeviceOpt = "auto",
) -> None:
    """Rank SAE latents by toxicity-specificity and write features.json."""
    from saedetox.discover.features import write_features
    from saedetox.discover.select import discover
    from saedetox.discover.sets import discovery_sets
    from saedetox.sae.load import load_sae

    sets = discovery_sets(pairs, toxic, clean, heldout_toxic, heldout_clean, field, data_dir)
    lm = _load(model, dtype, device)
    s = load_sae(sae, device=lm.device, model_uses_layernorm=lm.uses_layernorm)
    from saedetox.sae.preflight import check_fit

    check_fit(lm, s, hook)
    obj = discover(
        lm,
        s,
        sets.toxic,
        sets.clean,
        sets.heldout_toxic,
        sets.heldout_clean,
        method=method,
        k=k,
        min_auroc=min_auroc,
        paired=sets.paired,
        hook=hook,
        data=sets.description,
    )
    write_features(obj, out)
    auc = obj["set_heldout_auroc"]
    shown = "n/a" if auc is None else f"{auc:.3f}"
    typer.echo(f"selected {obj['selected']} (set held-out AUROC {shown}); wrote {out}")


# ----------------------------------------------------------------------------- evaluate


@app.command("evaluate")
def evaluate_cmd(
    out: Annotated[str, typer.Option("--out", help="Run folder (resumable).")],
    model: ModelOpt = "reference",
    method: Annotated[str, typer.Option("--method", help="none | sae | prompt | meandiff | aura | surgery.")] = "none",
    sae: SaeOpt = None,
    features: FeaturesOpt = None,
    mode: ModeOpt = "constant",
    strength: StrengthOpt = None,
    tier: TierOpt = None,
    hook: HookOpt = None,
    threshold: ThresholdOpt = "auto",
    clamp_value: ClampOpt = 0.0,
    positions: PositionsOpt = "all",
    spec: SpecOpt = None,
    prompts: Annotated[str, typer.Option("--prompts", help="challenging|nontoxic|RTP.jsonl|.txt")] = "challenging",
    n_prompts: Annotated[int | None, typer.Option("--n-prompts", help="Random subset size (seeded); 0 = all.")] = 100,
    samples: Annotated[int, typer.Option("--samples", "-k", help="Samples per prompt.")] = 25,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens")] = 20,
    top_p: Annotated[float, typer.Option("--top-p")] = 0.9,
    temperature: Annotated[float, typer.Option("--temperature")] = 1.0,
    judges: Annotated[str, typer.Option("--judges", help="Comma-separated judges.")] = "profanity,probe",
    ref_model: Annotated[
        str | None, typer.Option("--ref-model", help="LM for conditional PPL (default: unsteered).")
    ] = None,
    clean_texts: Annotated[int, typer.Option("--clean-texts", help="Held-out texts for ppl_clean (0 skips).")] = 200,
    capability: Annotated[str, typer.Option("--capability", help="Comma-separated tasks, e.g. lambada,blimp.")] = "",
    capability_limit: Annotated[int | None, typer.Option("--capability-limit")] = 200,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Sequences per generate call.")] = 64,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    data_dir: Annotated[str | None, typer.Option("--data-dir")] = None,
    dtype: DtypeOpt = "auto",
    device: DeviceOpt = "auto",
) -> None:
    """The RealToxicityPrompts protocol: toxicity per judge, fluency, diversity (resumable)."""
    from saedetox.eval.config import EvalConfig
    from saedetox.eval.run import evaluate
    from saedetox.methods.base import BASELINES
    from saedetox.methods.registry import build_method

    baseline = method in BASELINES
    steering = (
        _build_spec(
            sae,
            features,
            mode,
            None if baseline else strength,
            None if baseline else tier,
            hook,
            threshold,
            clamp_value,
            positions,
            spec,
            False,
        )
        if (sae or spec)
        else _build_spec(
            None,
            features,
            mode,
            None if baseline else strength,
            None if baseline else tier,
            hook,
            threshold,
            clamp_value,
            positions,
            spec,
            False,
        )
    )
    cfg = EvalConfig(
        prompts=prompts,
        n_prompts=n_prompts,
        samples=samples,
        max_new_tokens=max_new_tokens,
        top_p=top_p,
        temperature=temperature,
        judges=tuple(j.strip() for j in judges.split(",") if j.strip()),
        clean_texts=clean_texts,
        capability=tuple(t.strip() for t in capability.split(",") if t.strip()),
        capability_limit=capability_limit,
        batch_size=batch_size,
        seed=seed,
        ref_model=ref_model,
    ).validate()
    from saedetox.judges.registry import get_judge

    for j in cfg.judges:  # fail fast on an unknown or unavailable judge
        get_judge(j)
    lm = _load(model, dtype, device)
    ref = _load(cfg.ref_model, dtype, device) if cfg.ref_model else None
    options = {"data_dir": data_dir}
    if baseline and method != "prompt":
        options.update(hook=hook, tier=tier if (tier or strength is not None) else "medium", strength=strength)
    m = build_method(lm, method, steering, **options)
    res = evaluate(lm, out, cfg, m, ref_lm=ref, data_dir=data_dir)
    for j, t in res["toxicity"].items():
        typer.echo(f"{j}: tox_prob {t['tox_prob']:.3f}  EMT {t['emt']:.3f}  mean {t['mean']:.3f}")
    typer.echo(f"ppl_conditional {res['fluency']['ppl_conditional']:.2f}  dist-2 {res['diversity']['dist2']:.3f}")
    typer.echo(f"wrote {Path(out) / 'metrics.json'}")


# ----------------------------------------------------------------------------- train-sae


@app.command("train-sae")
def train_sae_cmd(
    hook: Annotated[str, typer.Option("--hook", help="TL hook name, e.g. blocks.3.hook_resid_pre.")],
    width: Annotated[int, typer.Option("--width", help="Number of latents.")],
    out: Annotated[str, typer.Option("--out", help="Output SAE-Lens folder.")],
    model: ModelOpt = "reference",
    k: Annotated[int, typer.Option("--k", help="Mean active latents per token (BatchTopK).")] = 32,
    tokens: Annotated[int, typer.Option("--tokens", help="Training activations.")] = 3_000_000,
    text: Annotated[str | None, typer.Option("--text", help="Training text (default: reference corpus).")] = None,
    field: Annotated[str, typer.Option("--field")] = "text",
    seed: int = 0,
    data_dir: Annotated[str | None, typer.Option("--data-dir")] = None,
    device: DeviceOpt = "auto",
) -> None:
    """Train a BatchTopK SAE on a model's activations; saves a JumpReLU SAE-Lens folder."""
    from saedetox.data.readers import read_texts
    from saedetox.train.sae import SAETrainConfig, train_sae

    cfg = SAETrainConfig(
        model=model, hook=hook, width=width, out=out, k=k, tokens=tokens, seed=seed, data_dir=data_dir, device=device
    )
    rep = train_sae(cfg, texts=read_texts(text, field) if text else None)
    typer.echo(
        f"L0 {rep['mean_l0']:.1f}  EV {rep['explained_variance']:.3f}  dead {rep['dead_share']:.1%}  "
        f"CE {rep['ce_clean']:.3f} -> {rep['ce_spliced']:.3f}; wrote {out}"
    )


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
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 1.5e-3,
    warmup_steps: Annotated[int, typer.Option(help="Linear warm-up steps.")] = 200,
    min_lr_frac: Annotated[float, typer.Option(help="Final lr as a fraction of the peak.")] = 0.1,
    init_from: Annotated[str | None, typer.Option(help="Continue from a trained model dir (new schedule).")] = None,
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
        lr=lr,
        warmup_steps=warmup_steps,
        min_lr_frac=min_lr_frac,
        init_from=init_from,
    )
    typer.echo(f"wrote {train_lm(cfg)}")


@app.command("train-judge")
def train_judge_cmd(
    out: Annotated[str, typer.Option("--out", help="Output folder for the probe judge.")],
    data_dir: Annotated[str | None, typer.Option("--data-dir")] = None,
    seed: int = 0,
) -> None:
    """Train the offline 'probe' toxicity judge (TF-IDF + logistic regression on Jigsaw)."""
    from saedetox.train.judge import train_judge

    res = train_judge(out, data_dir=data_dir, seed=seed)
    typer.echo(json.dumps(res.get("test", {}), indent=2, default=str))
    typer.echo(f"wrote {out}")


# ----------------------------------------------------------------------------- sweep / report


@app.command("sweep")
def sweep_cmd(
    config: Annotated[str, typer.Argument(help="Sweep YAML (see src/saedetox/configs/).")],
    out: Annotated[str | None, typer.Option("--out", help="Output folder (resumable).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate names and schema offline; run nothing.")] = False,
) -> None:
    """Run many evaluate runs from one YAML (resumable); write metrics.json and report.html."""
    import yaml

    from saedetox.sweep import dry_run as check
    from saedetox.sweep import load_config, run_sweep

    cfg = load_config(config)
    if dry_run:
        for line in check(cfg):
            typer.echo(line)
        typer.echo("dry run OK")
        return
    if out is None:
        raise SaedetoxError("Give --out DIR (or --dry-run).")
    run_sweep(cfg, out, config_source=yaml.safe_load(Path(config).read_text()))
    typer.echo(f"wrote {Path(out) / 'metrics.json'} and {Path(out) / 'report.html'}")


@app.command("splitting")
def splitting_cmd(
    out: Annotated[str, typer.Option("--out", help="Output folder (resumable).")] = "splitting_out",
    config: Annotated[str | None, typer.Option("--config", help="Sweep YAML with a splitting section.")] = None,
) -> None:
    """The feature-splitting study (default: the reference world's committed SAE widths)."""
    from importlib.resources import files

    from saedetox.sweep import load_config, run_sweep

    path = config or str(files("saedetox") / "configs" / "splitting.yaml")
    cfg = load_config(path)
    if cfg.splitting is None or not cfg.splitting.saes:
        raise SaedetoxError(f"{path} has no splitting section with SAEs.")
    run_sweep(cfg, out)
    study = json.loads((Path(out) / "splitting.json").read_text())
    typer.echo(study["conclusion"])


@app.command("report")
def report_cmd(
    runs: Annotated[list[str], typer.Argument(help="metrics.json files (per run or per sweep).")],
    out: Annotated[str, typer.Option("--out", help="Output HTML file.")] = "report.html",
    baseline: Annotated[str, typer.Option("--baseline", help="Run to compare against.")] = "none",
) -> None:
    """Tables and plots (self-contained HTML + markdown) from one or more metrics.json files."""
    from saedetox.report.load import load_runs
    from saedetox.report.markdown import markdown_summary
    from saedetox.report.write import write_report

    results = load_runs([Path(r) for r in runs])
    write_report(results, out, baseline=baseline)
    md = Path(out).with_suffix(".md")
    from saedetox.io import atomic_write_text

    atomic_write_text(md, markdown_summary(results, baseline=baseline))
    typer.echo(f"wrote {out} and {md}")


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
