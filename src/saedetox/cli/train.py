"""``saedetox train-lm``, ``train-sae``, ``train-judge``: train the reference world's LM, SAEs and probe judge."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from saedetox.cli.options import DataDirOpt, DeviceOpt, ModelOpt


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
    data_dir: DataDirOpt = None,
    device: DeviceOpt = "auto",
) -> None:
    """Train a BatchTopK SAE on a model's activations; saves a JumpReLU SAE-Lens folder."""
    from saedetox.data.readers import read_texts  # deferred: see saedetox.cli.app
    from saedetox.io import check_output_dir
    from saedetox.train.sae import SAETrainConfig, train_sae

    check_output_dir(out)
    cfg = SAETrainConfig(
        model=model, hook=hook, width=width, out=out, k=k, tokens=tokens, seed=seed, data_dir=data_dir, device=device
    )
    rep = train_sae(cfg, texts=read_texts(text, field) if text else None)
    typer.echo(
        f"L0 {rep['mean_l0']:.1f}  EV {rep['explained_variance']:.3f}  dead {rep['dead_share']:.1%}  "
        f"CE {rep['ce_clean']:.3f} -> {rep['ce_spliced']:.3f}; wrote {out}"
    )


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
    from saedetox.io import check_output_dir
    from saedetox.train.lm import LMTrainConfig, train_lm  # deferred: see saedetox.cli.app

    check_output_dir(out)
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


def train_judge_cmd(
    out: Annotated[str, typer.Option("--out", help="Output folder for the probe judge.")],
    data_dir: DataDirOpt = None,
    seed: int = 0,
) -> None:
    """Train the offline 'probe' toxicity judge (TF-IDF + logistic regression on Jigsaw)."""
    from saedetox.io import check_output_dir
    from saedetox.train.judge import train_judge  # deferred: see saedetox.cli.app

    check_output_dir(out)
    res = train_judge(out, data_dir=data_dir, seed=seed)
    typer.echo(json.dumps(res.get("test", {}), indent=2, default=str))
    typer.echo(f"wrote {out}")
