"""The ``surgery`` baseline: Model Surgery (Wang et al. 2024).

A logistic-regression toxicity probe on mean-pooled hidden states at the hook; the MLP input
weight vectors (one per neuron, every layer) most aligned with the probe direction are
shifted against it, w_i ← w_i − α‖w_i‖ p̂. A persistent weight edit (:func:`apply_surgery`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from saedetox.errors import SaedetoxError
from saedetox.methods.base import Method
from saedetox.methods.contrast import ContrastData, cached, pooled_activations
from saedetox.model.arch import mlp_in_weights
from saedetox.model.load import LoadedModel

SURGERY_STRENGTH = {"low": 0.5, "medium": 1.0, "high": 2.0}


def surgery_probe(lm: LoadedModel, hook: str, data: ContrastData, seed: int = 0) -> tuple[torch.Tensor, float]:
    """Unit toxicity-probe direction (logistic regression on pooled hidden states) and its train accuracy."""
    x = torch.cat([pooled_activations(lm, data.toxic, hook), pooled_activations(lm, data.clean, hook)]).numpy()
    y = np.r_[np.ones(len(data.toxic)), np.zeros(len(data.clean))]
    mu, sd = x.mean(0), x.std(0) + 1e-6
    clf = LogisticRegression(C=1.0, max_iter=2000, random_state=seed).fit((x - mu) / sd, y)
    w = torch.from_numpy(clf.coef_[0] / sd).float()
    return w / w.norm(), float(clf.score((x - mu) / sd, y))


@torch.no_grad()
def surgery_edits(
    lm: LoadedModel, direction: torch.Tensor, alpha: float, top_frac: float = 0.01
) -> list[tuple[int, int, torch.Tensor]]:
    """(layer, neuron, delta) for the neurons whose input weights align most with the probe."""
    cands = []
    p = direction.to(lm.device)
    for i, block in enumerate(lm.layers):
        w, axis = mlp_in_weights(block)
        vecs = w.float() if axis == 0 else w.float().T  # [d_mlp, d_model]
        cos = (vecs @ p) / vecs.norm(dim=-1).clamp_min(1e-8)
        for j in range(cos.shape[0]):
            cands.append((float(cos[j]), i, j))
    cands.sort(reverse=True)
    n = max(1, int(top_frac * len(cands)))
    edits = []
    for _, i, j in cands[:n]:
        w, axis = mlp_in_weights(lm.layers[i])
        vec = w[j] if axis == 0 else w[:, j]
        edits.append((i, j, (-alpha * vec.float().norm() * p).to(w.dtype)))
    return edits


@contextmanager
def apply_surgery(lm: LoadedModel, edits: list[tuple[int, int, torch.Tensor]]) -> Iterator[None]:
    """Apply the weight edits in place while active; restore the original weights afterwards."""
    saved = []
    with torch.no_grad():
        for i, j, delta in edits:
            w, axis = mlp_in_weights(lm.layers[i])
            view = w[j] if axis == 0 else w[:, j]
            saved.append((w, axis, j, view.clone()))
            view.add_(delta)
    try:
        yield
    finally:
        with torch.no_grad():
            for w, axis, j, orig in saved:
                (w[j] if axis == 0 else w[:, j]).copy_(orig)


def surgery_method(
    lm: LoadedModel, hook: str, data: ContrastData, tier: str | float | None, strength: float | None
) -> Method:
    direction, acc = cached(data, ("surgery", id(lm.model), hook), lambda: surgery_probe(lm, hook, data))
    if strength is None and tier is not None and tier not in SURGERY_STRENGTH:
        raise SaedetoxError("Surgery takes a named tier (low, medium, high) or --strength, not a numeric tier.")
    alpha = strength if strength is not None else SURGERY_STRENGTH[tier or "medium"]
    edits = surgery_edits(lm, direction, alpha)
    return Method(
        name="surgery",
        context=lambda: apply_surgery(lm, edits),
        details={"hook": hook, "alpha": alpha, "tier": tier, "edited_neurons": len(edits), "probe_train_acc": acc},
    )
