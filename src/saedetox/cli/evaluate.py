"""``saedetox evaluate``: the RealToxicityPrompts protocol for one method (resumable)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from saedetox.cli.fields import Choices, with_options
from saedetox.cli.options import (
    DataDirOpt,
    DeviceOpt,
    DtypeOpt,
    ModelOpt,
    SteeringOptions,
    build_spec,
    check_method_features,
    load_lm,
)
from saedetox.errors import SaedetoxError
from saedetox.eval.config import EvalConfig
from saedetox.methods.registry import (  # light: names and declarations
    build_method,
    check_options,
    default_method,
    get_method,
    method_names,
    train_judge_for,
)


@with_options
def evaluate_cmd(
    out: Annotated[str, typer.Option("--out", help="Run folder (resumable).")],
    model: ModelOpt = "reference",
    method: Annotated[
        str | None,
        typer.Option("--method", help="What the run does to the model (default: sae with --sae/--spec, else none)."),
        Choices(method_names),
    ] = None,
    steering: SteeringOptions = SteeringOptions(),
    protocol: EvalConfig = EvalConfig(),
    data_dir: DataDirOpt = None,
    dtype: DtypeOpt = "auto",
    device: DeviceOpt = "auto",
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a run in OUT that was made with other settings.")
    ] = False,
    train_judge: Annotated[
        str | None,
        typer.Option(
            "--train-judge",
            help="The judge whose labels a method that learns from one (rectification) trains on; default: the "
            "first of profanity, probe that does not score the run.",
        ),
    ] = None,
) -> None:
    """The RealToxicityPrompts protocol: toxicity per judge, fluency, diversity (resumable).

    Example: saedetox evaluate --out runs/sae --sae reference --features features.json --tier medium
    """
    from saedetox.eval.run import evaluate, prepare
    from saedetox.eval.runs.fingerprint import texts_digest  # deferred: see saedetox.cli.app
    from saedetox.io import ensure_unlocked
    from saedetox.methods.contrast import default_contrast
    from saedetox.model.chat import check_chat
    from saedetox.steering.spec import parse_tier

    steered = bool(steering.sae or steering.spec)
    info = get_method(method or default_method(steered))
    if not info.steering and steered:
        raise SaedetoxError(
            f"--method {info.name} takes no steering options (--sae, --features, --spec); "
            "drop them or use --method sae."
        )
    own_spec = "spec" in info.needs
    # a baseline's --tier / --strength set the baseline's own strength, not an SAE intervention's
    own = replace(
        steering,
        sae=steering.sae or None,
        strength=steering.strength if own_spec else None,
        tier=steering.tier if own_spec else None,
    )
    spec = build_spec(own, required=False)
    cfg = protocol
    options: dict[str, Any] = {"data_dir": data_dir}
    if info.strength:
        if steering.tier is not None:
            parse_tier(steering.tier)
        tier, strength = steering.tier, steering.strength
        options.update(tier=tier if (tier or strength is not None) else "medium", strength=strength)
    if info.hook:
        options["hook"] = steering.hook
    if info.modes and not own_spec:
        options["mode"] = steering.mode
    if train_judge is not None:
        options["train_judge"] = train_judge
    check_options(info.name, **options)
    if info.learns_from_judge:
        options["train_judge"] = train_judge_for(train_judge, cfg.judges)
    prepare(cfg, Path(out), data_dir, overwrite)
    ensure_unlocked(out, "evaluate")  # config, judges, out folder, prompts, a stale run: before any model
    lm = load_lm(model, dtype, device)
    ref = load_lm(cfg.ref_model, dtype, device) if cfg.ref_model else None
    for loaded in [lm, ref] if cfg.chat else []:  # before a baseline is fitted
        if loaded is not None:
            check_chat(loaded.tokenizer, loaded.name)
    run_config: dict[str, Any] = {}
    if "contrast" in info.needs:
        options["data"] = contrast = default_contrast(data_dir)
        run_config["contrast"] = texts_digest(contrast.toxic + ["\x00"] + contrast.clean)
    m = build_method(lm, info.name, spec, **options)
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
