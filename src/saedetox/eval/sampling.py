"""The one sampling function every caller uses (evaluate, sweep, demo, generate).

Prompts are left-padded, BOS is prepended when asked, each prompt is expanded to
``n_samples`` sequences, and batches are generated with HF ``generate`` and its KV cache.
Batch boundaries depend only on the prompt order and ``prompts_per_batch``, and each batch is
seeded from ``(seed, batch index)``, so a resumed run regenerates exactly the batches an
uninterrupted one would. A faster decode loop can replace :func:`_generate_batch` alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from transformers import LogitsProcessorList
from transformers.generation.logits_process import TopPLogitsWarper

from saedetox.errors import SaedetoxError
from saedetox.model.guard import check_scores
from saedetox.model.load import LoadedModel
from saedetox.model.tokens import tokenize_batch
from saedetox.steering.steerer import Steerer


@dataclass
class SamplingConfig:
    n_samples: int = 25
    max_new_tokens: int = 20
    top_p: float = 0.9
    temperature: float = 1.0
    do_sample: bool = True
    seed: int = 0
    batch_size: int = 64  # sequences (prompts × samples) per generate call
    prepend_bos: bool = True
    use_cache: bool = True

    def validate(self) -> SamplingConfig:
        if self.n_samples < 1 or self.max_new_tokens < 1 or self.batch_size < 1:
            raise SaedetoxError("n_samples, max_new_tokens and batch_size must be at least 1.")
        if not 0 < self.top_p <= 1:
            raise SaedetoxError(f"top_p must be in (0, 1], got {self.top_p}.")
        if not 0 < self.temperature < math.inf:
            raise SaedetoxError(f"temperature must be a positive finite number, got {self.temperature}.")
        return self

    @property
    def prompts_per_batch(self) -> int:
        return max(1, self.batch_size // self.n_samples)


@dataclass
class Sample:
    """One continuation of one prompt."""

    prompt_index: int
    sample_index: int
    text: str
    token_ids: list[int]


class NucleusWarper:
    """Temperature, then nucleus (top-p) filtering: transformers' rule, on a partial sort.

    transformers' ``TopPLogitsWarper`` sorts the whole vocabulary at every step (a third of
    generation time for an 8k vocabulary on CPU; far more for Gemma's 256k). A token is dropped
    when the mass of it and every smaller token is ≤ 1 − p, i.e. when the mass strictly above it
    is ≥ p, so only the top-``k`` logits need sorting when they already hold more than p of the
    mass; the rows where they do not get the full sort. The kept set equals transformers'
    except where float rounding puts a token within ~1e-6 of the boundary. Temperature is applied
    here because ``generate`` runs user processors before its own warpers.
    """

    def __init__(self, top_p: float, temperature: float = 1.0, k: int = 1024) -> None:
        self.top_p, self.temperature, self.k = float(top_p), float(temperature), int(k)
        self.step = 0

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.temperature != 1.0:
            scores = scores / self.temperature
        check_scores(scores, self.step)  # one clear line instead of multinomial's "probability tensor contains nan"
        self.step += 1
        if self.top_p >= 1.0:
            return scores
        if self.k >= scores.shape[-1]:
            return self._full(scores)
        logits = scores.float()
        top, idx = logits.topk(self.k, dim=-1)  # descending
        probs = (top - logits.logsumexp(-1, keepdim=True)).exp()
        head = probs.cumsum(-1)
        keep_top = (head - probs) < self.top_p  # mass strictly above the token < p; the top token always
        keep_top[:, 0] = True
        keep = torch.zeros_like(scores, dtype=torch.bool).scatter_(1, idx, keep_top)
        out = scores.masked_fill(~keep, float("-inf"))
        flat = head[:, -1] <= self.top_p + 1e-4  # rows whose nucleus reaches past the top k
        if bool(flat.any()):
            out[flat] = self._full(scores[flat])
        return out

    def _full(self, scores: torch.Tensor) -> torch.Tensor:
        return TopPLogitsWarper(self.top_p)(None, scores)  # type: ignore[arg-type]


def _check_greedy(input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    check_scores(scores)  # argmax over NaN would pick a token silently
    return scores


def batch_bounds(n_prompts: int, cfg: SamplingConfig) -> list[tuple[int, int]]:
    ppb = cfg.prompts_per_batch
    return [(s, min(s + ppb, n_prompts)) for s in range(0, n_prompts, ppb)]


@torch.no_grad()
def _generate_batch(
    lm: LoadedModel, prompts: Sequence[str], cfg: SamplingConfig, seed: int, steerer: Steerer | None
) -> list[list[int]]:
    expanded = [p for p in prompts for _ in range(cfg.n_samples)]
    room = lm.max_positions - cfg.max_new_tokens if lm.max_positions else None
    enc = tokenize_batch(
        lm.tokenizer,
        expanded,
        prepend_bos=cfg.prepend_bos,
        padding_side="left",
        device=lm.device,
        max_length=room,
        truncation_side="left",
    )
    width = enc["input_ids"].shape[1]
    eos = lm.tokenizer.eos_token_id
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else eos
    torch.manual_seed(seed)
    if lm.device.type == "cuda":
        torch.cuda.manual_seed_all(seed)
    kwargs = dict(
        max_new_tokens=cfg.max_new_tokens,
        do_sample=cfg.do_sample,
        pad_token_id=pad,
        eos_token_id=eos,
        use_cache=cfg.use_cache,
    )
    if cfg.do_sample:
        warp = NucleusWarper(cfg.top_p, cfg.temperature)
        kwargs.update(top_p=1.0, temperature=1.0, top_k=0, logits_processor=LogitsProcessorList([warp]))
    else:
        kwargs.update(logits_processor=LogitsProcessorList([_check_greedy]))
    if steerer is not None:
        with steerer.prompt_length(width):
            out = lm.model.generate(**enc, **kwargs)
    else:
        out = lm.model.generate(**enc, **kwargs)
    rows = []
    for row in out[:, width:].tolist():
        if eos is not None and eos in row:
            row = row[: row.index(eos)]
        rows.append(row)
    return rows


def iter_samples(
    lm: LoadedModel,
    prompts: Sequence[str],
    cfg: SamplingConfig,
    steerer: Steerer | None = None,
    skip_batches: set[int] | None = None,
) -> Iterator[tuple[int, list[Sample]]]:
    """Yield ``(batch_index, samples)`` per batch, skipping batches in ``skip_batches``."""
    cfg.validate()
    skip = skip_batches or set()
    ctx = steerer if steerer is not None and not steerer.is_attached else nullcontext()
    with ctx:
        for b, (start, end) in enumerate(batch_bounds(len(prompts), cfg)):
            if b in skip:
                continue
            rows = _generate_batch(lm, prompts[start:end], cfg, seed=cfg.seed * 1_000_003 + b, steerer=steerer)
            texts = lm.tokenizer.batch_decode(rows, skip_special_tokens=True)
            samples = [
                Sample(start + i // cfg.n_samples, i % cfg.n_samples, texts[i], rows[i]) for i in range(len(rows))
            ]
            yield b, samples


def sample(
    lm: LoadedModel,
    prompts: Sequence[str],
    cfg: SamplingConfig,
    steerer: Steerer | None = None,
    on_batch: Callable[[int, list[Sample]], None] | None = None,
) -> list[list[Sample]]:
    """All samples, grouped per prompt: ``result[i][j]`` is sample j of prompt i."""
    out: list[list[Sample]] = [[] for _ in prompts]
    for b, samples in iter_samples(lm, prompts, cfg, steerer):
        for s in samples:
            out[s.prompt_index].append(s)
        if on_batch:
            on_batch(b, samples)
    return out
