"""The ``rectification`` baseline: Systematic Rectification (Cao et al., ICLR 2023; mcao516/rectification-lm).

A decoding-time method: the LM's weights and activations are untouched. A small value model
(:mod:`saedetox.methods.value_model`) estimates ``Q_D(s, a)`` for every next token; while the method
is active, every decode loop that samples from the LM caps each token's probability at
``1 + Q_D(s, a) − ε`` and renormalises (:mod:`saedetox.methods.dead_end`), through the logits
processor hook of :mod:`saedetox.model.logits`. The tier sets ε.

The value model is trained on the LM's own samples of training prompts, labelled by a training
judge (:mod:`saedetox.methods.value_training`), once per LM, judge and training settings: it is
cached under ``$XDG_CACHE_HOME/saedetox/rectification/`` (``~/.cache`` without it) and reused.
The run records which judge labelled it, how it was trained and the value model's digest
(``config.rectification`` in metrics.json); ``evaluate`` warns when that judge also scores the run.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from saedetox.errors import SaedetoxError
from saedetox.methods.base import Method
from saedetox.methods.dead_end import ROUNDS, epsilon_of
from saedetox.methods.value_model import (
    ValueModel,
    ValueProcessor,
    build_value_model,
    load_value_model,
    save_value_model,
    value_identity,
)
from saedetox.methods.value_replay import replay_rectification
from saedetox.methods.value_training import (
    ValueTrainConfig,
    labelled_trajectories,
    train_value_model,
    training_prompts,
)
from saedetox.model.load import LoadedModel
from saedetox.model.logits import processing_logits
from saedetox.progress import note
from saedetox.version import __version__

#: bump when the same settings would train another value model
RECIPE = "rectification-value-v2"  # v2: lr 3e-4, warm-up and decay, held-out early stopping


def cache_dir() -> Path:
    """Where trained value models are kept."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "saedetox" / "rectification"


def lm_digest(lm: LoadedModel) -> str:
    """A digest of the LM's config, weights and vocabulary size (the value model is trained for this LM)."""
    h = hashlib.sha256(json.dumps(lm.model.config.to_diff_dict(), sort_keys=True, default=str).encode())
    for name, t in lm.model.state_dict().items():
        flat = t.detach().reshape(-1).float()
        h.update(f"{name}|{tuple(t.shape)}|{float(flat.double().sum()):.9e}".encode())
        h.update(flat[:: max(1, flat.numel() // 4096)].cpu().numpy().tobytes())
    h.update(str(len(lm.tokenizer)).encode())
    return h.hexdigest()[:16]


def cache_key(lm: LoadedModel, cfg: ValueTrainConfig, prompts: list[str]) -> str:
    """The cache key of a value model: recipe, LM, training settings and prompts."""
    texts = hashlib.sha256("\n".join(prompts).encode()).hexdigest()
    parts = [RECIPE, lm_digest(lm), json.dumps(asdict(cfg), sort_keys=True), texts]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:20]


def trained_value_model(
    lm: LoadedModel, cfg: ValueTrainConfig | None = None, data_dir: str | None = None, retrain: bool = False
) -> tuple[ValueModel, dict[str, Any]]:
    """The value model for ``lm`` trained with ``cfg``: from the cache, else trained now and cached."""
    cfg = (cfg or ValueTrainConfig()).validate()
    prompts = training_prompts(data_dir, cfg.n_prompts, cfg.seed)
    path = cache_dir() / f"{cache_key(lm, cfg, prompts)}.pt"
    if path.is_file() and not retrain:
        vm, meta = load_value_model(path)
        return vm.to(lm.device), {**meta, "file": str(path)}
    note(f"rectification: training the value model ({len(prompts)} prompts, judge {cfg.judge})")
    trajs = labelled_trajectories(lm, prompts, cfg)
    vm = build_value_model(lm, cfg.n_layers, cfg.seed).to(lm.device)
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
    record = train_value_model(vm, trajs, cfg, pad)
    meta = {"recipe": RECIPE, "saedetox": __version__, "train": asdict(cfg), "record": record, "lm": lm_digest(lm)}
    save_value_model(vm, path, meta)
    return vm, {**meta, "file": str(path)}


def value_model_file(vm: ValueModel) -> Path:
    """A file holding ``vm`` (saved under the cache by its digest unless there already): how vLLM's workers load it."""
    path = cache_dir() / "given" / f"{value_identity(vm)}.pt"
    if not path.is_file():
        save_value_model(vm, path, {"recipe": None, "saedetox": __version__})
    return path


def rectification_method(
    lm: LoadedModel,
    tier: str | float | None = "medium",
    strength: float | None = None,
    train: ValueTrainConfig | None = None,
    value_model: ValueModel | None = None,
    data_dir: str | None = None,
    rounds: int = ROUNDS,
) -> Method:
    """The method at threshold ε (``tier`` or ``strength``), with ``value_model`` or the one trained for ``lm``."""
    eps, tier_name = epsilon_of(tier, strength)
    if value_model is None:
        value_model, meta = trained_value_model(lm, train, data_dir)
        judge = meta["train"]["judge"]
    else:
        meta = {"train": None, "record": None}
        judge = None
    vm = value_model.to(lm.device).eval()
    processor = ValueProcessor(vm, eps, rounds, meta.get("file") or (lambda: value_model_file(vm)))
    if vm.config.vocab_size != lm.model.get_output_embeddings().weight.shape[0]:
        raise SaedetoxError(f"The value model scores {vm.config.vocab_size} tokens; the LM has another vocabulary.")

    def replay(prompt_ids: list[list[int]], continuation_ids: list[list[list[int]]], max_new_tokens: int) -> None:
        replay_rectification(lm, processor, prompt_ids, continuation_ids, max_new_tokens)

    @contextmanager
    def context() -> Iterator[None]:
        with processing_logits(lm.model, processor):
            yield

    details = {
        "tier": tier_name,
        "strength": eps,  # ε: a run's level along the curve when no named tier is given
        "rectification": {
            "epsilon": eps,
            "rounds": rounds,
            # the cap acts on the LM's own next-token distribution; temperature and top-p follow (both backends)
            "order": "cap, temperature, top-p",
            "train_judge": judge,
            "value_model": value_identity(vm),
            "value_layers": vm.config.n_layer,
            "value_params": sum(p.numel() for p in vm.parameters()),
            "training": meta.get("train"),
            "training_record": meta.get("record"),
        },
    }
    return Method(
        name="rectification",
        context=context,
        details=details,
        stats=lambda: {"rectification": processor.stats.summary()},
        judges=(judge,) if judge else (),
        request_args=lambda: processor.request_args or {},
        replay=replay,
    )


@torch.no_grad()
def zero_value_model(lm: LoadedModel, n_layers: int = 1) -> ValueModel:
    """An untrained value model (head 0: ``Q_D = 0`` everywhere), e.g. to check the rule changes nothing at ε = 0."""
    return build_value_model(lm, n_layers)
