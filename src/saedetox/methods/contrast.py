"""The toxic/clean contrast data the baselines learn from, and the activation statistics they share."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from saedetox.data.roles import paradetox_by_role
from saedetox.model.capture import iter_activations
from saedetox.model.load import LoadedModel
from saedetox.model.tokens import tokenize_batch


@dataclass
class ContrastData:
    toxic: list[str]
    clean: list[str]
    cache: dict[Any, Any] = field(default_factory=dict, repr=False)  # directions/factors computed from it


def default_contrast(data_dir: str | None = None, max_pairs: int | None = None) -> ContrastData:
    """The discovery split (ParaDetox role ``discovery``): toxic sides vs neutral paraphrases."""
    pairs = paradetox_by_role(data_dir)["discovery"][:max_pairs]
    return ContrastData([p.toxic for p in pairs], [p.neutral for p in pairs])


def cached(data: ContrastData, key: tuple[Any, ...], fn: Callable[[], Any]) -> Any:
    """``fn()`` computed once per ``data`` and ``key`` (directions and factors learnt from the data)."""
    if key not in data.cache:
        data.cache[key] = fn()
    return data.cache[key]


@torch.no_grad()
def pooled_activations(lm: LoadedModel, texts: Sequence[str], hook: str, batch_size: int = 32) -> torch.Tensor:
    """Per-text mean over real (non-BOS, non-pad) tokens of the activation at ``hook``: [n, d]."""
    out = []
    for acts, mask, _ in iter_activations(lm, texts, [hook], batch_size, True, "right", 128):
        m = mask.bool().clone()
        m[:, 0] = False
        a = acts[hook].float() * m.unsqueeze(-1)
        out.append((a.sum(1) / m.sum(1, keepdim=True).clamp_min(1)).cpu())
    return torch.cat(out)


#: floats of token activations :func:`token_mean` may keep for a later projection (1 GiB); more are not kept
TOKENS_BUDGET = 2**28


@torch.no_grad()
def token_mean(
    lm: LoadedModel, texts: Sequence[str], hook: str, keep: list[torch.Tensor] | None = None
) -> torch.Tensor:
    """Mean activation over all real tokens of ``texts`` at ``hook``.

    With ``keep`` (an empty list), each text's token activations ``[T_i, d]`` (BOS and padding
    excluded, float32 on CPU) are appended to it, so :func:`max_projection_of` can project them
    later without another pass; past ``TOKENS_BUDGET`` floats the list is emptied and left empty.
    """
    total, n, kept = None, 0, 0
    for acts, mask, _ in iter_activations(lm, texts, [hook], 32, True, "right", 128):
        m = mask.bool().clone()
        m[:, 0] = False
        x = acts[hook].float()
        a = x[m]
        total = a.sum(0) if total is None else total + a.sum(0)
        n += a.shape[0]
        if keep is not None and kept <= TOKENS_BUDGET:
            kept += a.numel()
            if kept > TOKENS_BUDGET:
                keep.clear()
            else:
                keep.extend(x[i][m[i]].cpu() for i in range(x.shape[0]))
    assert total is not None
    return (total / max(n, 1)).cpu()


def max_projection_of(tokens: Sequence[torch.Tensor], direction: torch.Tensor) -> torch.Tensor:
    """Per text, the maximum over its kept token activations of ``x · direction`` (−inf for a text with no token)."""
    v = direction.float().cpu()
    return torch.stack([(t @ v).max() if len(t) else torch.tensor(float("-inf")) for t in tokens])


class StopForward(Exception):
    """Raised by a hook once everything a pass needs has been seen (skips the rest, e.g. the LM head)."""


def length_sorted_batches(
    lm: LoadedModel, texts: Sequence[str], batch_size: int = 32, max_length: int = 128
) -> Iterator[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    """Right-padded batches of ``texts`` in the tokenizer's own encoding (no forced BOS), shortest first.

    Yields ``(positions of the batch's texts in texts, batch)``; sorting by length keeps padding
    (wasted compute) small, and right padding keeps every model's positions as in an unpadded pass.
    """
    lengths = torch.tensor([len(ids) for ids in lm.tokenizer(list(texts), add_special_tokens=True)["input_ids"]])
    order = torch.argsort(lengths, stable=True)
    for s in range(0, len(texts), batch_size):
        idx = order[s : s + batch_size]
        yield idx, tokenize_batch(lm.tokenizer, [texts[i] for i in idx], False, "right", lm.device, max_length)


#: a module to hook and how to pool its output per text: ``fn(output, mask [B, T] bool) -> [B, ...]``
Reducer = tuple[nn.Module, Callable[[Any, torch.Tensor], torch.Tensor]]


@torch.no_grad()
def pooled_outputs(
    lm: LoadedModel, texts: Sequence[str], reducers: dict[str, Reducer], batch_size: int = 32, max_length: int = 128
) -> dict[str, torch.Tensor]:
    """One pass over ``texts`` (:func:`length_sorted_batches`): each reducer's per-text pooled output, ``[n, ...]``.

    Every reducer hooks its module; the pass stops once all of them have run (the rest of the
    model, e.g. the LM head, is skipped). Results are float32 on CPU, in ``texts`` order.
    """
    state: dict[str, torch.Tensor] = {}
    acc: dict[str, list[torch.Tensor]] = {n: [] for n in reducers}
    seen: set[str] = set()

    def make(name: str, fn: Callable[[Any, torch.Tensor], torch.Tensor]):
        def hook(mod: nn.Module, args: Any, output: Any) -> None:
            if name in seen:  # a module called twice in one pass (shared weights): its first call counts
                return
            acc[name].append(fn(output, state["mask"]).float().cpu())
            seen.add(name)
            if len(seen) == len(reducers):
                raise StopForward

        return hook

    handles = [mod.register_forward_hook(make(n, fn)) for n, (mod, fn) in reducers.items()]
    order = []
    try:
        for idx, batch in length_sorted_batches(lm, texts, batch_size, max_length):
            state["mask"] = batch["attention_mask"].bool()
            seen.clear()
            order.append(idx)
            run_until_stopped(lm, batch)
    finally:
        for h in handles:
            h.remove()
    if not order:
        return {n: torch.empty(0) for n in reducers}
    inverse = torch.argsort(torch.cat(order))
    return {n: torch.cat(v)[inverse] for n, v in acc.items()}


def run_until_stopped(lm: LoadedModel, batch: dict[str, torch.Tensor]) -> None:
    """A forward pass that its hooks may end early with :class:`StopForward`."""
    try:
        lm.model(**batch, use_cache=False)
    except StopForward:
        pass


@torch.no_grad()
def max_projection(lm: LoadedModel, texts: Sequence[str], hook: str, direction: torch.Tensor) -> torch.Tensor:
    """Per-text maximum over real (non-BOS, non-pad) tokens of ``x · direction`` at ``hook``: [n]."""
    v = direction.float().to(lm.device)
    out = []
    for acts, mask, _ in iter_activations(lm, texts, [hook], 32, True, "right", 128):
        m = mask.bool().clone()
        m[:, 0] = False
        proj = (acts[hook].float() @ v).masked_fill(~m, float("-inf"))
        out.append(proj.amax(1).cpu())
    return torch.cat(out)
