"""Summed NLL of continuations given contexts, each distinct context encoded once (its KV cache shared).

Conditional perplexity scores k continuations of every prompt; scoring each ``prompt +
continuation`` row from scratch encodes the prompt k times. Here each distinct context is
encoded once: (1) up to ``prefix_batch`` distinct contexts, sorted by length and left-padded,
go through one forward with a KV cache, keeping only the last position's logits (they score
every continuation's first token); (2) their continuations, sorted by length, are scored in
chunks of at most ``batch_rows``: each chunk's cache is its contexts' rows gathered per
continuation, and one forward over the continuations (minus their last token, right-padded)
gives the NLL of tokens 2 … n. Position ids continue each context's own count, so every token
sees exactly what it would in one unpadded forward of ``context + continuation``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from saedetox.eval.kvcache import forward_params, new_cache
from saedetox.model.load import LoadedModel

#: most logits one continuation forward may hold (rows × positions × vocabulary), to bound memory
MAX_LOGITS = 1 << 26


@torch.inference_mode()
def shared_prefix_nll(
    lm: LoadedModel,
    items: Sequence[tuple[Sequence[int], Sequence[int]]],
    batch_rows: int = 128,
    prefix_batch: int = 64,
) -> np.ndarray:
    """``[n, 2]`` = (summed NLL of ``cont`` given ``ctx``, ``len(cont)``) per ``(ctx, cont)``; both non-empty."""
    out = np.zeros((len(items), 2), dtype=np.float64)
    groups: dict[tuple[int, ...], list[int]] = {}
    for n, (ctx, cont) in enumerate(items):
        if not ctx or not cont:
            raise ValueError("shared_prefix_nll needs a non-empty context and continuation per item.")
        groups.setdefault(tuple(int(t) for t in ctx), []).append(n)
    keys = sorted(groups, key=len)
    for o in range(0, len(keys), prefix_batch):
        outer = keys[o : o + prefix_batch]
        members = [(g, n) for g, key in enumerate(outer) for n in groups[key]]
        members.sort(key=lambda m: len(items[m[1]][1]))
        conts = [list(items[n][1]) for _, n in members]
        _score_group(lm, outer, members, conts, out, batch_rows)
    return out


def _pad(
    rows: Sequence[Sequence[int]], pad: int, left: bool, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        sl = slice(width - len(r), width) if left else slice(0, len(r))
        ids[i, sl] = torch.tensor(list(r), dtype=torch.long)
        mask[i, sl] = 1
    return ids.to(device), mask.to(device)


def _score_group(
    lm: LoadedModel,
    contexts: list[tuple[int, ...]],
    members: list[tuple[int, int]],
    conts: list[list[int]],
    out: np.ndarray,
    batch_rows: int,
) -> None:
    model, dev = lm.model, lm.device
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
    params = forward_params(model)
    cache_key = "cache" if "cache" in params else "past_key_values"
    keep = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
    ctx_ids, ctx_mask = _pad(contexts, pad, True, dev)
    longest = max(len(c) for c in conts)
    cache = new_cache(model, ctx_ids.shape[1] + longest - 1)
    pos = (ctx_mask.cumsum(-1) - 1).masked_fill_(ctx_mask == 0, 0)
    first = model(
        input_ids=ctx_ids, attention_mask=ctx_mask, position_ids=pos, use_cache=True, **{cache_key: cache}, **keep
    )
    first_logp = first.logits[:, -1].float().log_softmax(-1)  # [G, V]: each context's next-token distribution
    ctx_len = ctx_mask.sum(-1)
    vocab = first_logp.shape[-1]
    limit = lm.max_positions
    s = 0
    while s < len(members):
        longest_here = len(conts[min(s + batch_rows, len(conts)) - 1])  # sorted by length
        rows = max(1, min(batch_rows, MAX_LOGITS // (longest_here * vocab)))
        idx = list(range(s, min(s + rows, len(members))))
        s = idx[-1] + 1
        own = torch.tensor([members[i][0] for i in idx], device=dev)
        ids, mask = _pad([conts[i] for i in idx], pad, False, dev)
        nll = torch.zeros(ids.shape, dtype=torch.float64, device=dev)
        nll[:, 0] = -first_logp[own].gather(1, ids[:, :1]).squeeze(1).double()
        if ids.shape[1] > 1:
            sub = copy.copy(cache)
            sub.layers = [copy.copy(layer) for layer in cache.layers]
            sub.batch_select_indices(own)  # rebinds each layer's tensors: the shared cache is left as it was
            steps = torch.arange(ids.shape[1] - 1, device=dev)
            cpos = ctx_len[own].unsqueeze(1) + steps.unsqueeze(0)
            if limit:
                cpos = cpos.clamp_max(limit - 1)  # only right-pad slots can reach past the context length
            logits = model(
                input_ids=ids[:, :-1],
                attention_mask=torch.cat([ctx_mask[own], mask[:, :-1]], dim=1),
                position_ids=cpos,
                use_cache=True,
                **{cache_key: sub},
            ).logits
            sel = mask[:, 1:].bool()
            nll[:, 1:][sel] = F.cross_entropy(logits[sel].float(), ids[:, 1:][sel], reduction="none").double()
        sums = (nll * mask).sum(-1).cpu().numpy()
        for k, i in enumerate(idx):
            out[members[i][1]] = (sums[k], len(conts[i]))
