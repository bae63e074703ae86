"""The one sampling function every caller uses (evaluate, sweep, demo, generate).

Prompts are left-padded, BOS is prepended when asked, and each batch of prompts is generated
by the lean decode loop (:mod:`saedetox.eval.sampler.decode`): every prompt is encoded once and its KV
cache repeated to its ``n_samples`` sequences. Batches group prompts of similar length
(:func:`batch_members`: prompts ordered by token count, ties by position, then cut into
``prompts_per_batch``), so little of a batch is padding (about a third fewer prompt positions
than batches in file order on RealToxicityPrompts). The batches depend only on the prompts and
``prompts_per_batch``, and the random numbers of a batch depend only on ``(seed, batch index,
step)`` and its shape (:class:`~saedetox.eval.sampler.noise.NoiseStream`), so a resumed run regenerates
exactly the batches an uninterrupted one would, and every method that samples the same prompts
sees the same noise (common random numbers: paired comparisons between methods).

Sampling is temperature + nucleus (top-p) exactly as transformers defines it, drawn by
Gumbel-max on that noise (:mod:`saedetox.eval.sampler.nucleus`). The sampler's id, :data:`SAMPLER`, is
part of the config (and so of each run's recorded config and fingerprint): generations made
by another sampler are never mixed with these.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import fields, replace
from typing import Any

from saedetox.errors import SaedetoxError
from saedetox.eval.sampler.backends import HF, SAMPLERS, VLLM, check_backend
from saedetox.eval.sampler.decode import DecodeSettings, lean_generate
from saedetox.eval.sampler.noise import NoiseStream
from saedetox.eval.sampler.settings import Sample, SamplingConfig
from saedetox.model.chat import chat_texts
from saedetox.model.load import LoadedModel, as_loaded_model
from saedetox.model.tokens import tokenize_batch
from saedetox.progress import warn
from saedetox.steering.steerer import Steerer, generating

#: this decode loop's name and version (:data:`saedetox.eval.sampler.backends.SAMPLERS`)
SAMPLER = SAMPLERS[HF]
__all__ = ["SAMPLER", "Sample", "SamplingConfig", "batch_members", "iter_samples", "prompt_lengths", "sample"]


def batch_members(lengths: Sequence[int], cfg: SamplingConfig) -> list[list[int]]:
    """The prompt indices of each batch: prompts ordered by ``lengths`` (ties by index), ``prompts_per_batch`` each."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    ppb = cfg.prompts_per_batch
    return [order[s : s + ppb] for s in range(0, len(order), ppb)]


def prompt_lengths(lm: LoadedModel, prompts: Sequence[str], chat: bool = False) -> list[int]:
    """Token count of each prompt (without special tokens; as a chat turn when ``chat``): what
    :func:`batch_members` orders by."""
    if not prompts:
        return []
    texts = chat_texts(lm.tokenizer, prompts, chat)
    return [len(ids) for ids in lm.tokenizer(texts, add_special_tokens=False)["input_ids"]]


def _generate_batch(lm: LoadedModel, prompts: Sequence[str], cfg: SamplingConfig, batch: int) -> list[list[int]]:
    """Token ids of ``n_samples`` continuations per prompt, prompt-major, each cut before its first EOS."""
    room = lm.max_positions - cfg.max_new_tokens if lm.max_positions else None
    enc = tokenize_batch(
        lm.tokenizer,
        list(prompts),
        prepend_bos=cfg.prepend_bos,
        padding_side="left",
        device=lm.device,
        max_length=room,
        truncation_side="left",
    )
    width = enc["input_ids"].shape[1]
    eos = lm.tokenizer.eos_token_id
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else (eos if eos is not None else 0)
    noise = NoiseStream(cfg.seed, batch, lm.device) if cfg.do_sample else None
    with generating(lm.model, width):  # every attached Steerer (given or a method's) sees generated positions
        settings = DecodeSettings(
            max_new_tokens=cfg.max_new_tokens,
            eos_token_id=eos,
            pad_token_id=pad,
            n_repeat=cfg.n_samples,
            top_p=cfg.top_p,
            temperature=cfg.temperature,
            use_cache=cfg.use_cache,
        )
        out = lean_generate(lm.model, enc["input_ids"], enc["attention_mask"], settings, noise)
    rows = []
    for row in out.tolist():
        if eos is not None and eos in row:
            row = row[: row.index(eos)]
        rows.append(row)
    return rows


def _warn_cut(lm: LoadedModel, prompts: Sequence[str], cfg: SamplingConfig) -> None:
    """One warning line when prompts are longer than the context leaves room for (they lose their start)."""
    room = lm.max_positions - cfg.max_new_tokens if lm.max_positions else None
    if room is None or not prompts:
        return
    extra = 1 if cfg.prepend_bos and lm.tokenizer.bos_token_id is not None else 0
    cut = sum(n + extra > room for n in prompt_lengths(lm, prompts))
    if cut:
        warn(
            f"{cut} of {len(prompts)} prompt(s) are longer than the {room} tokens the context of {lm.max_positions} "
            f"leaves beside {cfg.max_new_tokens} new tokens; they were cut to their last {room} tokens."
        )


def iter_samples(
    lm: LoadedModel,
    prompts: Sequence[str],
    cfg: SamplingConfig,
    steerer: Steerer | None = None,
    skip_batches: set[int] | None = None,
    batches: list[list[int]] | None = None,
) -> Iterator[tuple[int, list[Sample]]]:
    """Yield ``(batch_index, samples)`` per batch, skipping batches in ``skip_batches``.

    ``batches`` is :func:`batch_members` of these prompts when the caller has it already (not recomputed).
    """
    cfg.validate()
    if cfg.sampler != SAMPLER:
        raise SaedetoxError(f"iter_samples runs saedetox's own sampler ({SAMPLER}), not {cfg.sampler}.")
    _warn_cut(lm, prompts, cfg)
    skip = skip_batches or set()
    ctx = steerer if steerer is not None and not steerer.is_attached else nullcontext()
    prompts = chat_texts(lm.tokenizer, prompts, cfg.chat)
    with ctx:
        if batches is None:
            batches = batch_members(prompt_lengths(lm, prompts), cfg)
        for b, members in enumerate(batches):
            if b in skip:
                continue
            rows = _generate_batch(lm, [prompts[i] for i in members], cfg, b)  # steerers act through generating()
            texts = lm.tokenizer.batch_decode(rows, skip_special_tokens=True)
            samples = [
                Sample(members[i // cfg.n_samples], i % cfg.n_samples, texts[i], rows[i]) for i in range(len(rows))
            ]
            yield b, samples


def as_samples(lm: LoadedModel, rows: list[list[list[int]]]) -> list[list[Sample]]:
    """Token ids per prompt and sample as :class:`Sample` s (decoded by the model's tokenizer)."""
    return [
        [Sample(i, j, lm.tokenizer.decode(r, skip_special_tokens=True), r) for j, r in enumerate(group)]
        for i, group in enumerate(rows)
    ]


def sample(
    lm: LoadedModel,
    prompts: Sequence[str] | str,
    cfg: SamplingConfig | None = None,
    steerer: Steerer | None = None,
    on_batch: Callable[[int, list[Sample]], None] | None = None,
    backend: str | None = None,
    **options: Any,
) -> list[list[Sample]]:
    """All samples, grouped per prompt: ``result[i][j]`` is sample j of prompt i.

    ``cfg`` defaults to :class:`SamplingConfig` (); ``options`` override its fields
    (``sample(lm, "Hi", n_samples=3, seed=1)``; ``chat=True`` wraps each prompt in the chat template,
    :mod:`saedetox.model.chat`). Steering hooks attached to ``lm`` apply. ``backend="vllm"`` samples with
    vLLM instead (``steerer``'s steering compiled into its workers; :mod:`saedetox.eval.sampler.vllm`).
    """
    lm = as_loaded_model(lm)
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    unknown = sorted(set(options) - {f.name for f in fields(SamplingConfig)})
    if unknown:
        raise SaedetoxError(f"Unknown sampling option(s): {', '.join(unknown)}.")
    cfg = replace(cfg if cfg is not None else SamplingConfig(), **options)
    if backend is not None:
        cfg = replace(cfg, sampler=SAMPLERS[check_backend(backend)])
    if cfg.validate().backend == VLLM:
        from saedetox.eval.sampler.vllm import sample_vllm  # deferred: vLLM is an optional extra

        groups = as_samples(lm, sample_vllm(lm, prompts, cfg, steerer))
        if on_batch:
            on_batch(0, [s for group in groups for s in group])
        return groups
    out: list[list[Sample]] = [[] for _ in prompts]
    for b, samples in iter_samples(lm, prompts, cfg, steerer):
        for s in samples:
            out[s.prompt_index].append(s)
        if on_batch:
            on_batch(b, samples)
    return out
