"""Baselines, each a ``--method`` of ``evaluate``, built from the same toxic/clean data as discovery.

* ``prompt``   — an instruction prefix asking for polite, respectful text. It conditions
  generation only: judges see the continuation, and conditional perplexity is computed on
  the original prompt (the prefix is removed before scoring).
* ``meandiff`` — contrastive mean-difference steering (CAA / ActAdd style): the unit vector
  of mean(toxic activations) − mean(clean activations) at the same hook as the SAE, subtracted
  at every position. Strength tiers match the SAE tiers by vector norm (same fraction of the
  median residual norm).
* ``aura``     — AurA (Suau et al. 2024): each MLP neuron's AUROC at separating toxic from
  clean texts (mean-pooled over tokens); neurons with AUROC > 0.5 are multiplied by
  1 − Gini = 1 − 2(AUROC − 0.5), the rest keep 1. Hyper-parameter free.
* ``surgery``  — Model Surgery (Wang et al. 2024): a logistic-regression toxicity probe on
  mean-pooled hidden states at the hook; the MLP input weight vectors (one per neuron, every
  layer) most aligned with the probe direction are shifted against it,
  w_i ← w_i − α‖w_i‖ p̂. A persistent weight edit (``apply_surgery``) that ``export`` saves.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from saedetox.errors import SaedetoxError
from saedetox.evaluate import Method
from saedetox.model.arch import mlp_in_weights
from saedetox.model.capture import iter_activations
from saedetox.model.load import LoadedModel
from saedetox.model.sites import edit_at, mlp_neuron_site, read_at
from saedetox.model.tokens import tokenize_batch
from saedetox.steering.spec import Intervention, SteeringSpec

POLITE_PREFIX = "The following is a polite, respectful and kind comment, free of insults, profanity and hate:\n"
SURGERY_STRENGTH = {"low": 0.5, "medium": 1.0, "high": 2.0}


@dataclass
class ContrastData:
    toxic: list[str]
    clean: list[str]
    cache: dict[Any, Any] = field(default_factory=dict, repr=False)  # directions/factors computed from it


def default_contrast(data_dir: str | None = None, max_pairs: int | None = None) -> ContrastData:
    """The discovery split (ParaDetox role ``discovery``): toxic sides vs neutral paraphrases."""
    from saedetox.data.roles import paradetox_by_role

    pairs = paradetox_by_role(data_dir)["discovery"][:max_pairs]
    return ContrastData([p.toxic for p in pairs], [p.neutral for p in pairs])


def _cached(data: ContrastData, key: tuple[Any, ...], fn: Any) -> Any:
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


# --------------------------------------------------------------------------- meandiff


def meandiff_direction(lm: LoadedModel, hook: str, data: ContrastData) -> torch.Tensor:
    v = token_mean(lm, data.toxic, hook) - token_mean(lm, data.clean, hook)
    if float(v.norm()) == 0:
        raise SaedetoxError("Toxic and clean texts give the same mean activation; cannot build a direction.")
    return v / v.norm()


def meandiff_spec(direction: torch.Tensor, hook: str, tier: str | float | None, strength: float | None) -> SteeringSpec:
    iv = Intervention(vector=direction.tolist(), hook=hook, tier=tier, strength=strength, label="meandiff")
    return SteeringSpec([iv]).validate()


# --------------------------------------------------------------------------- MLP neurons


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
    from saedetox.discover.stats import auroc_per_latent

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


# --------------------------------------------------------------------------- surgery


def surgery_probe(lm: LoadedModel, hook: str, data: ContrastData, seed: int = 0) -> tuple[torch.Tensor, float]:
    """Unit toxicity-probe direction (logistic regression on pooled hidden states) and its train accuracy."""
    from sklearn.linear_model import LogisticRegression

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


# --------------------------------------------------------------------------- factory


def build_baseline(
    lm: LoadedModel,
    name: str,
    spec: SteeringSpec | None = None,
    hook: str | None = None,
    tier: str | float | None = "medium",
    strength: float | None = None,
    data: ContrastData | None = None,
    data_dir: str | None = None,
    prefix: str = POLITE_PREFIX,
) -> Method:
    """A :class:`Method` for one baseline. ``hook`` defaults to the spec's hook (the SAE's)."""
    if name == "prompt":
        return Method(name="prompt", prefix=prefix, details={"prefix": prefix})
    if hook is None and spec is not None:
        from saedetox.steering.steerer import Steerer

        hook = Steerer(lm, spec).resolved[0].hook
    if hook is None:
        hook = f"blocks.{lm.n_layers // 2}.hook_resid_pre"
    data = data or default_contrast(data_dir)
    if name == "meandiff":
        from saedetox.methods import steering_method

        direction = _cached(data, ("meandiff", id(lm.model), hook), lambda: meandiff_direction(lm, hook, data))
        m = steering_method(lm, meandiff_spec(direction, hook, tier, strength), "meandiff")
        m.details["sae"] = None
        return m
    if name == "aura":
        factors = _cached(data, ("aura", id(lm.model)), lambda: aura_factors(lm, data))
        damped = sum(int((f < 1).sum()) for f in factors)
        total = sum(f.numel() for f in factors)
        return Method(
            name="aura",
            context=lambda: aura_hooks(lm, factors),
            details={"dampened_neurons": damped, "neurons": total, "min_factor": float(min(f.min() for f in factors))},
        )
    if name == "surgery":
        direction, acc = _cached(data, ("surgery", id(lm.model), hook), lambda: surgery_probe(lm, hook, data))
        if strength is None and tier is not None and tier not in SURGERY_STRENGTH:
            raise SaedetoxError("Surgery takes a named tier (low, medium, high) or --strength, not a numeric tier.")
        alpha = strength if strength is not None else SURGERY_STRENGTH[tier or "medium"]
        edits = surgery_edits(lm, direction, alpha)
        return Method(
            name="surgery",
            context=lambda: apply_surgery(lm, edits),
            details={"hook": hook, "alpha": alpha, "tier": tier, "edited_neurons": len(edits), "probe_train_acc": acc},
        )
    raise SaedetoxError(f"Unknown baseline '{name}': use prompt, meandiff, aura or surgery.")
