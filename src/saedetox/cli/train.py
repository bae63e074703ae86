"""``saedetox train-lm``, ``train-sae``, ``train-judge``: train the reference world's LM, SAEs and probe judge."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from saedetox.cli.fields import with_options
from saedetox.cli.options import DataDirOpt
from saedetox.train.config import LMTrainConfig, SAETrainConfig


@with_options
def train_sae_cmd(
    training: SAETrainConfig,
    text: Annotated[str | None, typer.Option("--text", help="Training text (default: reference corpus).")] = None,
    field: Annotated[str, typer.Option("--field", help="Field/column of a jsonl/csv --text file.")] = "text",
) -> None:
    """Train a BatchTopK SAE on a model's activations; saves a JumpReLU SAE-Lens folder.

    Example: saedetox train-sae --hook blocks.3.hook_resid_pre --width 4096 --out my-sae
    """
    from saedetox.data.readers import read_texts  # deferred: see saedetox.cli.app
    from saedetox.io import check_output_dir
    from saedetox.train.sae import train_sae

    check_output_dir(training.out)
    rep = train_sae(training, texts=read_texts(text, field) if text else None)
    typer.echo(
        f"L0 {rep['mean_l0']:.1f}  EV {rep['explained_variance']:.3f}  dead {rep['dead_share']:.1%}  "
        f"CE {rep['ce_clean']:.3f} -> {rep['ce_spliced']:.3f}; wrote {training.out}"
    )


@with_options
def train_lm_cmd(training: LMTrainConfig) -> None:
    """Train the reference world's tokenizer and GPT-2 model (resumes from OUT/checkpoints).

    Example: saedetox train-lm --out my-lm --max-tokens 2000000 --device cpu
    """
    from saedetox.io import check_output_dir
    from saedetox.train.lm import train_lm  # deferred: see saedetox.cli.app

    check_output_dir(training.out)
    typer.echo(f"wrote {train_lm(training)}")


def train_judge_cmd(
    out: Annotated[str, typer.Option("--out", help="Output folder for the probe judge.")],
    data_dir: DataDirOpt = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the train/test split and the fit.")] = 0,
) -> None:
    """Train the offline 'probe' toxicity judge (TF-IDF + logistic regression on Jigsaw).

    Example: saedetox train-judge --out my-judge
    """
    from saedetox.io import check_output_dir
    from saedetox.train.judge import train_judge  # deferred: see saedetox.cli.app

    check_output_dir(out)
    res = train_judge(out, data_dir=data_dir, seed=seed)
    typer.echo(json.dumps(res.get("test", {}), indent=2, default=str))
    typer.echo(f"wrote {out}")
