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
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from saedetox.eval.sampler.kvcache import forward_params, new_cache
from saedetox.model.load import LoadedModel

#: most logits one continuation forward may hold (rows × positions × vocabulary), to bound memory
MAX_LOGITS = 1 << 26
#: bytes of encoded contexts kept for later calls (a sweep scores the same prompts under the same reference model
#: in every run); 0 turns the reuse off
CONTEXT_CACHE_BYTES = 512 << 20
#: positions reserved past a context for its continuations, so a kept context serves later, longer ones
MIN_ROOM = 32


class _Encoded:
    """Contexts after their forward: KV cache (with room for continuations), next-token log-probs, mask."""

    def __init__(
        self, model: Any, cache: Any, first_logp: torch.Tensor, ctx_mask: torch.Tensor, room: int, nbytes: int
    ) -> None:
        self.model = weakref.ref(model)  # a later model at the same address is not this one
        self.cache, self.first_logp, self.ctx_mask, self.room, self.nbytes = cache, first_logp, ctx_mask, room, nbytes


_KEPT: OrderedDict[tuple[Any, ...], _Encoded] = OrderedDict()


def _weights_key(model: torch.nn.Module) -> tuple[Any, ...] | None:
    """What the encoded contexts depend on besides the ids: the weights (storage and in-place version); None with hooks.

    A forward hook or pre-hook anywhere (a Steerer, AurA's dampening) may change the activations, so
    nothing is reused while one is attached; weight edits in place (Model Surgery) bump the versions.
    """
    nn_module = torch.nn.modules.module
    if nn_module._global_forward_hooks or nn_module._global_forward_pre_hooks:
        return None
    for m in model.modules():
        if m._forward_hooks or m._forward_pre_hooks:
            return None
    tensors = [*model.parameters(), *model.buffers()]
    return (id(model), tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in tensors))


def clear_context_cache() -> None:
    """Forget every kept context encoding."""
    _KEPT.clear()


@torch.inference_mode()
def shared_prefix_nll(
    lm: LoadedModel,
    items: Sequence[tuple[Sequence[int], Sequence[int]]],
    batch_rows: int = 128,
    prefix_batch: int = 64,
    contexts: Sequence[Sequence[int]] = (),
) -> np.ndarray:
    """``[n, 2]`` = (summed NLL of ``cont`` given ``ctx``, ``len(cont)``) per ``(ctx, cont)``; both non-empty.

    Contexts are encoded in groups of ``prefix_batch`` (ordered by length, then ids). ``contexts``
    may name more contexts than ``items`` use (e.g. every prompt of a run, also those whose
    continuations are empty): the groups are then the same in every call over the same prompts,
    so their encodings are reused (``CONTEXT_CACHE_BYTES``).
    """
    out = np.zeros((len(items), 2), dtype=np.float64)
    groups: dict[tuple[int, ...], list[int]] = {tuple(int(t) for t in c): [] for c in contexts if len(c)}
    for n, (ctx, cont) in enumerate(items):
        if not ctx or not cont:
            raise ValueError("shared_prefix_nll needs a non-empty context and continuation per item.")
        groups.setdefault(tuple(int(t) for t in ctx), []).append(n)
    keys = sorted(groups, key=lambda c: (len(c), c))
    for o in range(0, len(keys), prefix_batch):
        outer = keys[o : o + prefix_batch]
        members = [(g, n) for g, key in enumerate(outer) for n in groups[key]]
        if not members:
            continue
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
    longest = max(len(c) for c in conts)
    enc = _encode(lm, contexts, longest - 1, pad, cache_key, keep)
    cache, first_logp, ctx_mask = enc.cache, enc.first_logp, enc.ctx_mask
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


def _encode(
    lm: LoadedModel, contexts: list[tuple[int, ...]], room: int, pad: int, cache_key: str, keep: dict[str, Any]
) -> _Encoded:
    """The contexts' forward with ``room`` free cache positions after them; kept for later calls.

    A kept encoding is reused for the same contexts under the same weights with no hook attached
    (:func:`_weights_key`) when it has room for the continuations; otherwise it is computed again.
    """
    model = lm.model
    wkey = _weights_key(model) if CONTEXT_CACHE_BYTES > 0 else None
    key = (wkey, tuple(contexts)) if wkey is not None else None
    if key is not None and key in _KEPT and _KEPT[key].room >= room and _KEPT[key].model() is model:
        _KEPT.move_to_end(key)
        return _KEPT[key]
    ctx_ids, ctx_mask = _pad(contexts, pad, True, lm.device)
    room = max(room, MIN_ROOM) if key is not None else room
    cache = new_cache(model, ctx_ids.shape[1] + room)
    pos = (ctx_mask.cumsum(-1) - 1).masked_fill_(ctx_mask == 0, 0)
    first = model(
        input_ids=ctx_ids, attention_mask=ctx_mask, position_ids=pos, use_cache=True, **{cache_key: cache}, **keep
    )
    first_logp = first.logits[:, -1].float().log_softmax(-1)  # [G, V]: each context's next-token distribution
    nbytes = first_logp.numel() * 4 + sum(
        t.numel() * t.element_size() for layer in cache.layers for t in vars(layer).values() if torch.is_tensor(t)
    )
    enc = _Encoded(model, cache, first_logp, ctx_mask, room, nbytes)
    if key is not None and nbytes <= CONTEXT_CACHE_BYTES:
        _KEPT[key] = enc
        while sum(e.nbytes for e in _KEPT.values()) > CONTEXT_CACHE_BYTES:
            _KEPT.popitem(last=False)
    return enc
