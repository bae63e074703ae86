"""What a training run does: :class:`SAETrainConfig` (``train-sae``) and :class:`LMTrainConfig` (``train-lm``).

Each field's default and help are written here once; the command line shows every field as an
option (``saedetox train-sae --help``). This module imports nothing heavy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from saedetox.errors import SaedetoxError

_REQUIRED: Any = object()


def _opt(default: Any, help: str, **cli: Any) -> Any:
    """A field with its command-line help (no default: a required option)."""
    if default is _REQUIRED:
        return field(metadata={"help": help, **cli})
    return field(default=default, metadata={"help": help, **cli})


@dataclass
class SAETrainConfig:
    """A BatchTopK SAE's training run (recipe: :mod:`saedetox.train.sae`)."""

    hook: str = _opt(_REQUIRED, "TL hook name, e.g. blocks.3.hook_resid_pre.")
    width: int = _opt(_REQUIRED, "Number of latents.")
    out: str = _opt(_REQUIRED, "Output SAE-Lens folder.")
    model: str = _opt("reference", "HF hub name, local model dir, or 'reference'.", short="-m")
    k: int = _opt(32, "Mean active latents per token (BatchTopK).")
    tokens: int = _opt(3_000_000, "Training activations.")
    batch_size: int = _opt(4096, "Activations per optimiser step.")
    lr: float | None = _opt(None, "Learning rate (default: 2e-4 * sqrt(16384 / width), Gao et al.).")
    aux_k: int | None = _opt(None, "Dead latents the AuxK loss revives (default: d_in // 2).")
    aux_coef: float = _opt(1 / 32, "Weight of the AuxK loss.")
    dead_tokens: int = _opt(500_000, "Tokens without firing after which a latent counts as dead.")
    buffer_tokens: int = _opt(262_144, "Activations held in the shuffle buffer.")
    context: int = _opt(128, "Tokens per training window (BOS prepended).")
    seed: int = _opt(0, "Seed of the text order and the initialisation.")
    data_dir: str | None = _opt(None, "Dataset folder (default: $SAEDETOX_DATA, ../shared/data).")
    device: str = _opt("auto", "auto | cpu | cuda[:N].")
    eval_texts: int = _opt(400, "Held-out texts for the quality report.")


@dataclass
class LMTrainConfig:
    """The reference world's tokenizer and GPT-2 training run (recipe: :mod:`saedetox.train.lm`)."""

    out: str = _opt(_REQUIRED, "Output HF model directory.")
    data_dir: str | None = _opt(None, "Dataset folder (default: $SAEDETOX_DATA, ../shared/data).")
    vocab_size: int = _opt(8192, "Tokenizer vocabulary size.")
    n_embd: int = _opt(256, "Model width.")
    n_layer: int = _opt(6, "Transformer blocks.")
    n_head: int = _opt(4, "Attention heads (must divide the width).")
    n_ctx: int = _opt(256, "Context length in tokens.")
    batch_size: int = _opt(32, "Windows per optimiser step.")
    lr: float = _opt(1.5e-3, "Peak learning rate.")
    min_lr_frac: float = _opt(0.1, "Final lr as a fraction of the peak.")
    warmup_steps: int = _opt(200, "Linear warm-up steps.")
    weight_decay: float = _opt(0.1, "AdamW weight decay.")
    max_tokens: int = _opt(16_000_000, "Training tokens.")
    seed: int = _opt(0, "Seed of the corpus order, the windows and the initialisation.")
    ckpt_every: int = _opt(100, "Steps between checkpoints (a rerun resumes from the last).")
    eval_every: int = _opt(250, "Steps between held-out evaluations.")
    compile: bool = _opt(True, "torch.compile the training step.")
    device: str = _opt("auto", "auto | cpu | cuda[:N].")
    max_docs_per_source: int | None = _opt(None, "Documents per source (tests: tiny corpora).", cli=False)
    init_from: str | None = _opt(None, "Continue from a trained model dir (new schedule; reuses its tokenizer).")

    def __post_init__(self) -> None:
        """Refuse settings that cannot train, before any data is read or folder written."""
        for name in ("vocab_size", "n_embd", "n_layer", "n_head", "n_ctx", "batch_size", "max_tokens"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise SaedetoxError(f"{name} must be a positive integer, got {getattr(self, name)!r}.")
        if self.n_embd % self.n_head:
            raise SaedetoxError(f"n_embd {self.n_embd} must be divisible by n_head {self.n_head}.")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise SaedetoxError(f"lr must be a positive number, got {self.lr}.")
        if not 0.0 <= self.min_lr_frac <= 1.0:
            raise SaedetoxError(f"min_lr_frac must be in [0, 1], got {self.min_lr_frac}.")
        if self.warmup_steps < 0 or self.seed < 0:
            raise SaedetoxError("warmup_steps and seed must be ≥ 0.")
        if self.init_from is not None and not (Path(self.init_from) / "config.json").is_file():
            raise SaedetoxError(f"init_from {self.init_from} is not a model folder (no config.json).")

    @property
    def steps(self) -> int:
        return max(1, self.max_tokens // (self.batch_size * self.n_ctx))
