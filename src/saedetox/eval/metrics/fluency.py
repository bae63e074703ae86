"""Fluency: conditional perplexity of continuations (DExperts) and clean-text perplexity.

Conditional perplexity: per continuation, the mean negative log-likelihood of its tokens given
the prompt under a reference LM, exp'd; continuations with PPL ≥ 1e4 are dropped and the rest
averaged (the mean of per-continuation perplexities, DExperts' convention, not token-weighted). A
dropped continuation is left out of toxicity as well (:func:`drop_from_scores`). Here each prompt
is encoded once and its KV cache shared by its continuations
(:mod:`saedetox.eval.metrics.shared_prefix`); clean-text perplexity batches rows by length.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from saedetox.errors import SaedetoxError
from saedetox.eval.metrics.bootstrap import bootstrap_ci, ci_list, none_if_nan
from saedetox.eval.metrics.shared_prefix import shared_prefix_nll
from saedetox.model.load import LoadedModel
from saedetox.model.tokens import DEFAULT_CONTEXT, bos_id, encode_text, with_bos


@torch.inference_mode()
def sequence_nll(lm: LoadedModel, rows: Sequence[tuple[Sequence[int], int]], batch_size: int = 32) -> np.ndarray:
    """``[n, 2]`` = (summed NLL, token count) of ``ids[start:]`` given ``ids[:start]`` for each ``(ids, start)``.

    Rows are batched by length with right padding, an attention mask and explicit position
    ids; ``start`` must be ≥ 1 (the first token has no prediction).
    """
    out = np.zeros((len(rows), 2), dtype=np.float64)
    order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
    for b in range(0, len(order), batch_size):
        idx = order[b : b + batch_size]
        width = max(len(rows[i][0]) for i in idx)
        ids = torch.full((len(idx), width), pad, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        score = torch.zeros((len(idx), width), dtype=torch.bool)
        for j, i in enumerate(idx):
            seq, start = rows[i]
            if start < 1:
                raise SaedetoxError("sequence_nll needs at least one context token before the scored tokens.")
            ids[j, : len(seq)] = torch.tensor(list(seq), dtype=torch.long)
            mask[j, : len(seq)] = 1
            score[j, start : len(seq)] = True
        ids, mask, sel = ids.to(lm.device), mask.to(lm.device), score[:, 1:].to(lm.device)
        pos = (mask.cumsum(-1) - 1).clamp_min(0)
        logits = lm.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False).logits
        # only the scored positions go through log-softmax (prompt tokens never reach float32 logits)
        nll = torch.nn.functional.cross_entropy(logits[:, :-1][sel].float(), ids[:, 1:][sel], reduction="none")
        sums = torch.zeros(len(idx), dtype=torch.float64, device=nll.device)
        sums.index_add_(0, sel.nonzero()[:, 0], nll.double())
        out[idx, 0] = sums.cpu().numpy()
        out[idx, 1] = sel.sum(-1).cpu().numpy()
    return out


def continuation_nll(
    lm: LoadedModel,
    prompts: Sequence[str],
    continuations: Sequence[Sequence[str]],
    batch_size: int = 32,
    prepend_bos: bool = True,
) -> list[list[tuple[float, int]]]:
    """Per prompt, per continuation: (summed NLL of the continuation tokens given the prompt, token count).

    Prompt and continuation are tokenised separately and their ids concatenated, so the scored
    tokens are the continuation's own tokenisation (what a model emits after the prompt), never
    a token merged across the boundary; DExperts instead tokenises ``prompt + continuation``
    jointly and counts ``len(full) − len(prompt)``. Over-long inputs keep the continuation and
    the last prompt tokens that fit the model. Empty continuations get ``(0.0, 0)``. Each prompt
    is encoded once for all its continuations (:mod:`saedetox.eval.metrics.shared_prefix`);
    ``batch_size`` continuations are scored per forward pass.
    """
    if len(prompts) != len(continuations):
        raise SaedetoxError(f"{len(prompts)} prompts but {len(continuations)} lists of continuations.")
    limit = int(lm.max_positions or DEFAULT_CONTEXT)
    items: list[tuple[list[int], list[int]]] = []
    where: list[tuple[int, int]] = []
    contexts: list[list[int]] = []  # every prompt's: the same encoding groups in every run over these prompts
    result: list[list[tuple[float, int]]] = [[(0.0, 0)] * len(c) for c in continuations]
    for i, (prompt, conts) in enumerate(zip(prompts, continuations, strict=True)):
        ctx = with_bos(lm.tokenizer, encode_text(lm.tokenizer, prompt), prepend_bos)  # a chat prompt has its BOS
        if not ctx:
            raise SaedetoxError("An empty prompt with prepend_bos=False leaves nothing to condition on.")
        contexts.append(ctx[-(limit - 1) :])
        for j, cont in enumerate(conts):
            cids = encode_text(lm.tokenizer, cont)[: limit - 1]
            if cids:
                items.append((ctx[-(limit - len(cids)) :], cids))
                where.append((i, j))
    if items:
        for (i, j), (s, n) in zip(
            where, shared_prefix_nll(lm, items, batch_rows=batch_size, contexts=contexts), strict=True
        ):
            result[i][j] = (float(s), int(n))
    return result


def conditional_perplexity(
    lm: LoadedModel,
    prompts: Sequence[str],
    continuations: Sequence[Sequence[str]],
    batch_size: int = 32,
    prepend_bos: bool = True,
    max_ppl: float = 1e4,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """DExperts fluency: mean over continuations of exp(mean NLL of its tokens | prompt), dropping PPL ≥ ``max_ppl``.

    Returns ``{"ppl", "ppl_ci", "n_scored", "n_dropped", "n_empty", "log_ppl", "dropped"}``; the CI
    resamples prompts. ``dropped[i][j]`` is True when continuation ``j`` of prompt ``i`` was dropped
    (PPL ≥ ``max_ppl``): the run leaves it out of toxicity too (:func:`drop_from_scores`).
    ``log_ppl[i]`` is the mean over prompt ``i``'s kept continuations of their mean token NLL (the
    log of each continuation's PPL; ``None`` when none was kept): the per-prompt value paired
    comparisons use. Run it on an unsteered reference model (hooks on ``lm.model`` would apply).
    """
    per_prompt = []
    log_ppl: list[float | None] = []
    dropped: list[list[bool]] = []
    n_dropped = n_empty = 0
    for row in continuation_nll(lm, prompts, continuations, batch_size, prepend_bos):
        kept, logs = [], []
        dropped.append([False] * len(row))
        for j, (s, n) in enumerate(row):
            if n == 0:
                n_empty += 1
                continue
            ppl = math.exp(s / n) if s / n < 700 else math.inf
            if not ppl < max_ppl:  # also drops NaN
                n_dropped += 1
                dropped[-1][j] = True
            else:
                kept.append(ppl)
                logs.append(s / n)
        per_prompt.append((sum(kept), len(kept)))
        log_ppl.append(sum(logs) / len(logs) if logs else None)
    sums = np.array(per_prompt, dtype=np.float64).reshape(-1, 2)

    def ratio(a: np.ndarray) -> float:
        return a[:, 0].sum() / a[:, 1].sum() if a[:, 1].sum() else math.nan

    return {
        "ppl": none_if_nan(ratio(sums)),
        "ppl_ci": ci_list(bootstrap_ci(sums, ratio, n_boot, seed)),
        "n_scored": int(sums[:, 1].sum()),
        "n_dropped": n_dropped,
        "n_empty": n_empty,
        "log_ppl": log_ppl,
        "dropped": dropped,
    }


def drop_from_scores(scores: np.ndarray, dropped: Sequence[Sequence[bool]]) -> np.ndarray:
    """``scores`` ``[n_prompts, k]`` with the continuations dropped from fluency set to NaN (left out of toxicity).

    One rule for both metrics: a continuation whose conditional PPL is ≥ the cut-off (degenerate text)
    counts in neither fluency nor toxicity. Empty continuations have no perplexity but keep their score.
    """
    out = np.array(scores, dtype=np.float64, copy=True)
    mask = np.array(dropped, dtype=bool).reshape(out.shape)
    out[mask] = np.nan
    return out


def clean_perplexity(
    lm: LoadedModel,
    texts: Sequence[str],
    batch_size: int = 16,
    max_length: int = 256,
    prepend_bos: bool = True,
) -> float:
    """Token-weighted perplexity exp(Σ NLL / Σ tokens) of ``lm`` on held-out ``texts``.

    Each text is cut into consecutive non-overlapping chunks of at most ``max_length`` tokens
    (BOS included, capped at the model's context); every chunk token after the first input
    position is scored (with BOS: every text token).
    """
    width = min(max_length, int(lm.max_positions or DEFAULT_CONTEXT))
    bos = [bos_id(lm.tokenizer)] if prepend_bos else []
    step = width - len(bos)
    if width < 2:
        raise SaedetoxError(f"max_length {max_length} is too short to score any token.")
    rows: list[tuple[list[int], int]] = []
    for text in texts:
        ids = encode_text(lm.tokenizer, text)
        for k in range(0, len(ids), step):
            chunk = bos + ids[k : k + step]
            if len(chunk) >= 2:
                rows.append((chunk, 1))
    if not rows:
        raise SaedetoxError("No text to score for clean perplexity (all texts empty or one token long).")
    sums = sequence_nll(lm, rows, batch_size)
    return float(math.exp(sums[:, 0].sum() / sums[:, 1].sum()))
