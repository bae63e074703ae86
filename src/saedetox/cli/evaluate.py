"""``saedetox evaluate``: the RealToxicityPrompts protocol for one method (resumable)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from saedetox.cli.options import (
    DataDirOpt,
    DeviceOpt,
    DtypeOpt,
    ModelOpt,
    SteeringOptions,
    build_spec,
    check_method_features,
    load_lm,
    steering_options,
)
from saedetox.errors import SaedetoxError


def _split(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


@steering_options
def evaluate_cmd(
    out: Annotated[str, typer.Option("--out", help="Run folder (resumable).")],
    model: ModelOpt = "reference",
    method: Annotated[
        str | None,
        typer.Option(
            "--method",
            help="none | sae | prompt | meandiff | aura | surgery (default: sae with --sae/--spec, else none).",
        ),
    ] = None,
    steering: SteeringOptions = SteeringOptions(),
    prompts: Annotated[
        str, typer.Option("--prompts", help="challenging|nontoxic[:dev|:test]|RTP.jsonl|.txt")
    ] = "challenging",
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
    chat: Annotated[
        bool, typer.Option("--chat", help="Wrap each prompt in the tokenizer's chat template (chat / instruct models).")
    ] = False,
    data_dir: DataDirOpt = None,
    dtype: DtypeOpt = "auto",
    device: DeviceOpt = "auto",
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a run in OUT that was made with other settings.")
    ] = False,
) -> None:
    """The RealToxicityPrompts protocol: toxicity per judge, fluency, diversity (resumable)."""
    from saedetox.eval.config import EvalConfig  # deferred: see saedetox.cli.app
    from saedetox.eval.run import evaluate, prepare
    from saedetox.eval.runs.fingerprint import texts_digest
    from saedetox.io import ensure_unlocked
    from saedetox.methods.base import BASELINES, METHOD_NAMES
    from saedetox.methods.contrast import default_contrast
    from saedetox.methods.registry import build_method
    from saedetox.model.chat import check_chat
    from saedetox.steering.spec import parse_tier

    if method is None:  # steering options imply the SAE method
        method = "sae" if (steering.sae or steering.spec) else "none"
    if method == "none" and (steering.sae or steering.spec):
        raise SaedetoxError(
            "--method none takes no steering options (--sae, --features, --spec); drop them or use --method sae."
        )
    if method not in METHOD_NAMES:
        raise SaedetoxError(f"Unknown method '{method}': use one of {', '.join(METHOD_NAMES)}.")
    baseline = method in BASELINES
    # a baseline's --tier / --strength set the baseline's own strength, not an SAE intervention's
    own = replace(
        steering,
        sae=steering.sae or None,
        strength=None if baseline else steering.strength,
        tier=None if baseline else steering.tier,
    )
    spec = build_spec(own, required=False)
    cfg = EvalConfig(
        prompts=prompts,
        n_prompts=n_prompts,
        samples=samples,
        max_new_tokens=max_new_tokens,
        top_p=top_p,
        temperature=temperature,
        judges=_split(judges),
        clean_texts=clean_texts,
        capability=_split(capability),
        capability_limit=capability_limit,
        batch_size=batch_size,
        seed=seed,
        ref_model=ref_model,
        chat=chat,
    )
    if baseline and method != "prompt" and steering.tier is not None:
        parse_tier(steering.tier)
    prepare(cfg, Path(out), data_dir, overwrite)
    ensure_unlocked(out, "evaluate")  # config, judges, out folder, prompts, a stale run: before any model
    lm = load_lm(model, dtype, device)
    ref = load_lm(cfg.ref_model, dtype, device) if cfg.ref_model else None
    for loaded in [lm, ref] if chat else []:  # before a baseline is fitted
        if loaded is not None:
            check_chat(loaded.tokenizer, loaded.name)
    options: dict[str, Any] = {"data_dir": data_dir}
    run_config: dict[str, Any] = {}
    if baseline and method != "prompt":
        tier, strength = steering.tier, steering.strength
        options.update(hook=steering.hook, tier=tier if (tier or strength is not None) else "medium", strength=strength)
        options["data"] = contrast = default_contrast(data_dir)
        run_config["contrast"] = texts_digest(contrast.toxic + ["\x00"] + contrast.clean)
    m = build_method(lm, method, spec, **options)
    check_method_features(m, own)
    res = evaluate(lm, out, cfg, m, ref_lm=ref, run_config=run_config, data_dir=data_dir, overwrite=overwrite)
    for j, t in res["toxicity"].items():
        typer.echo(
            f"{j}: tox_prob {_num(t['tox_prob'], '.3f')}  EMT {_num(t['emt'], '.3f')}  mean {_num(t['mean'], '.3f')}"
        )
    fl = res["fluency"]
    typer.echo(f"ppl_conditional {_ppl(fl)}  dist-2 {_num(res['diversity']['dist2'], '.3f')}")
    typer.echo(f"wrote {Path(out) / 'metrics.json'}")


def _num(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _ppl(fluency: dict[str, Any]) -> str:
    """Conditional PPL, or n/a with the reason it is undefined."""
    if fluency.get("ppl_conditional") is not None:
        return format(fluency["ppl_conditional"], ".2f")
    if fluency.get("n_dropped"):
        why = (
            "every continuation's perplexity ≥ 1e4"
            if not fluency.get("n_empty")
            else "every continuation is empty or has perplexity ≥ 1e4"
        )
    else:
        why = "every continuation is empty"
    return f"n/a ({why})"
