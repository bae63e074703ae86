"""The toxic/clean contrast data the baselines learn from, and the activation statistics they share."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

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


@torch.no_grad()
def token_mean(lm: LoadedModel, texts: Sequence[str], hook: str) -> torch.Tensor:
    """Mean activation over all real tokens of ``texts`` at ``hook``."""
    total, n = None, 0
    for acts, mask, _ in iter_activations(lm, texts, [hook], 32, True, "right", 128):
        m = mask.bool().clone()
        m[:, 0] = False
        a = acts[hook].float()[m]
        total = a.sum(0) if total is None else total + a.sum(0)
        n += a.shape[0]
    assert total is not None
    return (total / max(n, 1)).cpu()


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
