"""Activation capture: run the model up to the hooks you ask for, batch by batch."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from saedetox.model.load import LoadedModel
from saedetox.model.sites import HookSite, read_at
from saedetox.model.tokens import tokenize_batch


class _StopForward(Exception):
    pass


@torch.no_grad()
def run_to_hooks(lm: LoadedModel, batch: dict[str, torch.Tensor], hooks: Sequence[str]) -> dict[str, torch.Tensor]:
    """Activations at ``hooks`` for one tokenised batch; the forward stops after the deepest one."""
    sites = [lm.site(h) for h in hooks]
    deepest = max(sites, key=lambda s: (s.layer, s.when == "post"))
    store: dict[str, torch.Tensor] = {}

    def make(site: HookSite):
        def fn(hidden: torch.Tensor) -> None:
            store[site.name] = hidden.detach()
            if site is deepest and len(store) == len(sites):
                raise _StopForward

        return fn

    handles = [read_at(s, make(s)) for s in sites]
    try:
        lm.model(**batch, use_cache=False)
    except _StopForward:
        pass
    finally:
        for h in handles:
            h.remove()
    return store


def iter_activations(
    lm: LoadedModel,
    texts: Sequence[str],
    hooks: Sequence[str],
    batch_size: int = 16,
    prepend_bos: bool = True,
    padding_side: str = "right",
    max_length: int | None = 256,
) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]]:
    """Yield ``({hook: acts[B,T,d]}, attention_mask[B,T], input_ids[B,T])`` batch by batch.

    The forward pass stops after the deepest requested hook, so capturing an early layer
    costs only the layers up to it.
    """
    for start in range(0, len(texts), batch_size):
        batch = tokenize_batch(
            lm.tokenizer, texts[start : start + batch_size], prepend_bos, padding_side, lm.device, max_length
        )
        if padding_side == "left":
            batch["position_ids"] = (batch["attention_mask"].cumsum(-1) - 1).clamp_min(0)
        acts = run_to_hooks(lm, batch, hooks)
        batch.pop("position_ids", None)
        yield acts, batch["attention_mask"], batch["input_ids"]


def capture(
    lm: LoadedModel,
    texts: Sequence[str],
    hook: str,
    batch_size: int = 16,
    prepend_bos: bool = True,
    max_length: int | None = 256,
) -> list[torch.Tensor]:
    """Per-text activations ``[T_i, d]`` (padding removed) at one hook, in float32 on CPU."""
    out: list[torch.Tensor] = []
    for acts, mask, _ in iter_activations(lm, texts, [hook], batch_size, prepend_bos, "right", max_length):
        a = acts[hook].float().cpu()
        for i in range(a.shape[0]):
            out.append(a[i, : int(mask[i].sum())])
    return out
