"""The steering modes' arithmetic (``docs/steering.md``), as plain functions of the hidden state: no hooks, no state.

For latents F with unit decoder directions û_f, activations a_f(x) and strength α:

* ``constant``    x ← x − α Σ_f û_f at every steered position;
* ``conditional`` as constant, but per sequence only from the first position where any
  a_f(x) > τ (a sticky gate, carried across decode steps by the caller);
* ``token``       x ← x − α Σ_f 1[a_f(x) > τ] û_f, position by position;
* ``clamp``       a_f ← c keeping the SAE error term: x ← x + Σ_f (c − a_f(x)) d_f;
* ``adaptive``    x ← x − α p Σ_f û_f with p ∈ [0, 1] a detector's probability at that position
  (:func:`detector_prob`; cf. Dynamically Scaled Activation Steering, Ferrando et al. 2025).

``where`` is ``[B, T, 1]`` in ``x``'s dtype: 1 where a position may be steered, 0 elsewhere.
"""

from __future__ import annotations

import torch


def constant(x: torch.Tensor, where: torch.Tensor, vector: torch.Tensor) -> torch.Tensor:
    """``vector`` (= −α Σ û_f) added at the steered positions."""
    return x + where * vector


def token(x: torch.Tensor, where: torch.Tensor, fires: torch.Tensor, directions: torch.Tensor, alpha: float):
    """−α û_f added at each steered position where latent f fires (``fires``: ``[B, T, |F|]`` bool)."""
    push = fires.to(x.dtype) @ directions  # [B, T, d]
    return x - alpha * where * push


def clamp(
    x: torch.Tensor,
    where: torch.Tensor,
    acts: torch.Tensor,
    value: float,
    scale: torch.Tensor | float,
    decoder_rows: torch.Tensor,
) -> torch.Tensor:
    """Latent activations ``acts`` set to ``value``: the decoder rows times the change (``scale``: output scale)."""
    change = (value - acts) * scale
    return x + where * (change @ decoder_rows.to(acts.dtype)).to(x.dtype)


def conditional(
    x: torch.Tensor,
    where: torch.Tensor,
    fires: torch.Tensor,
    real: torch.Tensor | None,
    open_before: torch.Tensor,
    vector: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``vector`` added from each sequence's first real position where any latent fires onward.

    ``open_before`` ``[B]`` says which sequences' gates opened in an earlier call (decode steps);
    returns the steered ``x`` and the gate at every position ``[B, T]`` (its last column is what
    the next call starts from).
    """
    any_fire = fires.any(-1)
    if real is not None:
        any_fire = any_fire & real
    gate = torch.cummax(any_fire.to(torch.int8), dim=1).values.bool() | open_before.unsqueeze(1)
    return x + where * gate.unsqueeze(-1).to(x.dtype) * vector, gate


NO_EVIDENCE = -1e9  # evidence at positions that may not count (pad, BOS): never the running maximum


def running_max(evidence: torch.Tensor, counts: torch.Tensor, before: torch.Tensor) -> torch.Tensor:
    """``[B, T, k]``: per feature, the maximum of ``evidence`` over the counted positions up to each one.

    ``counts`` ``[B, T]`` bool says which positions count; ``before`` ``[B, k]`` carries the
    maximum of earlier calls (decode steps; :data:`NO_EVIDENCE` for none).
    """
    e = evidence.masked_fill(~counts.unsqueeze(-1), NO_EVIDENCE)
    return torch.maximum(torch.cummax(e, dim=1).values, before.unsqueeze(1))


def detector_prob(
    evidence: torch.Tensor, coef: torch.Tensor, inv_scale: torch.Tensor, intercept: float
) -> torch.Tensor:
    """``[B, T]``: sigmoid(Σ_f coef_f e_f / scale_f + intercept) for evidence ``[B, T, k]``."""
    return torch.sigmoid(evidence.float() @ (coef * inv_scale) + intercept)


def adaptive(x: torch.Tensor, where: torch.Tensor, prob: torch.Tensor, vector: torch.Tensor) -> torch.Tensor:
    """``vector`` (= −α Σ û_f) scaled per position by ``prob`` ``[B, T]``."""
    return x + where * prob.unsqueeze(-1).to(x.dtype) * vector
