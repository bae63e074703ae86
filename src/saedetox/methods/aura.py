"""The ``aura`` baseline: AurA (Suau et al. 2024), hyper-parameter free.

Each MLP neuron's AUROC at separating toxic from clean texts (mean-pooled over tokens);
neurons with AUROC > 0.5 are multiplied by 1 − Gini = 1 − 2(AUROC − 0.5), the rest keep 1.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch

from saedetox.discover.stats import auroc_per_latent
from saedetox.methods.base import Method
from saedetox.methods.contrast import ContrastData, cached
from saedetox.model.load import LoadedModel
from saedetox.model.sites import edit_at, mlp_neuron_site, read_at
from saedetox.model.tokens import tokenize_batch


@torch.no_grad()
def neuron_pooled(lm: LoadedModel, texts: Sequence[str], batch_size: int = 32) -> list[torch.Tensor]:
    """Per layer, per text: mean over real tokens of each MLP neuron's activation, [n, d_mlp]."""
    per_layer: list[list[torch.Tensor]] = [[] for _ in lm.layers]
    state: dict[str, torch.Tensor] = {}

    def make(i: int):
        def read(hidden: torch.Tensor) -> None:
            m = state["mask"]
            a = hidden.float() * m.unsqueeze(-1)
            per_layer[i].append((a.sum(1) / m.sum(1, keepdim=True).clamp_min(1)).cpu())

        return read

    handles = [read_at(mlp_neuron_site(lm.layers, i), make(i)) for i in range(lm.n_layers)]
    try:
        for s in range(0, len(texts), batch_size):
            batch = tokenize_batch(lm.tokenizer, texts[s : s + batch_size], True, "right", lm.device, 128)
            m = batch["attention_mask"].bool().clone()
            m[:, 0] = False
            state["mask"] = m
            lm.model(**batch, use_cache=False)
    finally:
        for h in handles:
            h.remove()
    return [torch.cat(x) for x in per_layer]


def aura_factors(lm: LoadedModel, data: ContrastData) -> list[torch.Tensor]:
    """AurA dampening factor per neuron and layer: 1 − 2(AUROC − 0.5) where AUROC > 0.5, else 1."""
    tox = neuron_pooled(lm, data.toxic)
    cln = neuron_pooled(lm, data.clean)
    out = []
    for t, c in zip(tox, cln, strict=True):
        auc = torch.from_numpy(auroc_per_latent(t.numpy(), c.numpy())).float()
        out.append(torch.where(auc > 0.5, 1.0 - 2.0 * (auc - 0.5), torch.ones_like(auc)))
    return out


@contextmanager
def aura_hooks(lm: LoadedModel, factors: list[torch.Tensor]) -> Iterator[None]:
    """Multiply each MLP neuron's activation by its factor while active."""
    handles = []
    for i, (_, f) in enumerate(zip(lm.layers, factors, strict=True)):
        f = f.to(lm.device, lm.dtype)
        handles.append(edit_at(mlp_neuron_site(lm.layers, i), lambda x, f=f: x * f))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def aura_method(lm: LoadedModel, data: ContrastData) -> Method:
    factors = cached(data, ("aura", id(lm.model)), lambda: aura_factors(lm, data))
    damped = sum(int((f < 1).sum()) for f in factors)
    total = sum(f.numel() for f in factors)
    return Method(
        name="aura",
        context=lambda: aura_hooks(lm, factors),
        details={"dampened_neurons": damped, "neurons": total, "min_factor": float(min(f.min() for f in factors))},
    )
