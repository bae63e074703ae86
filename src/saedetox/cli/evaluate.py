"""``saedetox evaluate``: the RealToxicityPrompts protocol for one method (resumable)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from saedetox.cli.fields import Choices, with_options
from saedetox.cli.method_options import TrainJudgeOpt, method_setup
from saedetox.cli.options import (
    DataDirOpt,
    DeviceOpt,
    DtypeOpt,
    ModelOpt,
    SteeringOptions,
    check_method_features,
    load_lm,
)
from saedetox.eval.config import EvalConfig
from saedetox.methods.registry import build_method, method_names  # light: names and declarations


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
    train_judge: TrainJudgeOpt = None,
) -> None:
    """The RealToxicityPrompts protocol: toxicity per judge, fluency, diversity (resumable).

    Example: saedetox evaluate --out runs/sae --sae reference --features features.json --tier medium
    """
    from saedetox.eval.run import evaluate, prepare
    from saedetox.eval.runs.fingerprint import texts_digest  # deferred: see saedetox.cli.app
    from saedetox.io import ensure_unlocked
    from saedetox.methods.contrast import default_contrast
    from saedetox.model.chat import check_chat

    cfg = protocol
    info, own, spec, options = method_setup(method, steering, data_dir, train_judge, cfg.judges)
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
