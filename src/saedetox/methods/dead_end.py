"""The rectification rule of Systematic Rectification (Cao et al., ICLR 2023): cap each token's probability.

``Q_D(s, a) ∈ [−1, 0]`` is the dead-end value of taking token ``a`` in state ``s`` (the prompt and
the tokens so far): minus the probability that the continuation from there ends toxic (the value
of the reward −1 at a toxic terminal state, γ = 1). The rectified policy keeps each token's
probability at most ``1 + Q_D(s, a) − ε``:

1. ``p = softmax(scores)``; ``cap = clip(1 + clip(Q_D, −1, 0) − ε, 0, 1)``;
2. ``rounds`` times: ``p ← min(p, cap)``, then renormalise (the official code's loop, 3 rounds).

A token with ``Q_D = −1`` (a certain dead end) gets probability 0; with ``Q_D = 0`` and ``ε = 0``
nothing changes. ``ε`` (the official ``--epsilon``/threshold) is the strength: the larger, the
more a token must be safe to keep its probability; the named tiers are :data:`RECTIFICATION_TIERS`.
A row where no token may keep any probability (every cap 0) keeps its original distribution and
is counted (:class:`RectifyStats`); the official code floors the cap at ``p_min = 1e−7`` instead,
so that a certain dead end is never quite removed (``docs/methods.md``).

Rows where no token exceeds its cap are returned bit for bit unchanged, so a zero value model at
``ε = 0`` samples exactly what the model would.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from saedetox.errors import SaedetoxError

#: ε per named tier: 0 (caps only by the value model; the official code's default), 0.1 (the official
#: README's setting), 0.3 (the threshold of the official decoding script's batch generation)
RECTIFICATION_TIERS: dict[str, float] = {"low": 0.0, "medium": 0.1, "high": 0.3}
#: cap-and-renormalise rounds of the official logits processor
ROUNDS = 3
#: the key of a vLLM request's ``extra_args`` that asks for rectification (:mod:`saedetox.serving.rectify`)
REQUEST_KEY = "rectification"


def request_args(value_model: str, eps: float, rounds: int = ROUNDS) -> dict[str, dict[str, object]]:
    """The ``extra_args`` of a vLLM request rectified with the value model file ``value_model`` at ``eps``."""
    return {REQUEST_KEY: {"value_model": str(value_model), "epsilon": float(eps), "rounds": int(rounds)}}


def epsilon_of(tier: str | float | None, strength: float | None) -> tuple[float, str | None]:
    """``(ε, tier name or None)`` from a named tier or a raw ``strength`` (ε itself, in [0, 1))."""
    if strength is not None:
        eps, name = float(strength), None
    elif isinstance(tier, str) and tier.strip().lower() in RECTIFICATION_TIERS:
        name = tier.strip().lower()
        eps = RECTIFICATION_TIERS[name]
    else:
        tiers = ", ".join(RECTIFICATION_TIERS)
        raise SaedetoxError(f"rectification takes a tier ({tiers}) or a strength (ε in [0, 1)), not {tier!r}.")
    if not 0.0 <= eps < 1.0:
        raise SaedetoxError(f"rectification's strength is the threshold ε, in [0, 1); got {eps:g}.")
    return eps, name


@dataclass
class RectifyStats:
    """What the rule did over a run: rows seen, rows changed, rows left as they were (no token allowed)."""

    rows: int = 0
    changed: int = 0
    no_safe_token: int = 0
    removed_mass: float = 0.0  # summed over changed rows: probability taken from capped tokens in the first round

    def summary(self) -> dict[str, float | int]:
        return {
            "rows": self.rows,
            "changed_share": self.changed / self.rows if self.rows else 0.0,
            "no_safe_token_rows": self.no_safe_token,
            "mean_removed_mass": self.removed_mass / self.changed if self.changed else 0.0,
        }


def caps(q: torch.Tensor, eps: float) -> torch.Tensor:
    """The per-token probability caps ``clip(1 + clip(q, −1, 0) − ε, 0, 1)``."""
    return (1.0 + q.float().clamp(-1.0, 0.0) - eps).clamp(0.0, 1.0)


def rectify(
    scores: torch.Tensor, q: torch.Tensor, eps: float, rounds: int = ROUNDS, stats: RectifyStats | None = None
) -> torch.Tensor:
    """Scores ``[B, V]`` of the rectified distribution (log-probabilities in changed rows, ``-inf`` for removed tokens).

    ``q`` ``[B, V]`` holds ``Q_D(s, a)`` for every token (clipped to [−1, 0] here); see the module docstring.
    """
    probs = scores.float().softmax(-1)
    cap = caps(q, eps).to(probs.device)
    rows = (probs > cap).any(-1).nonzero().squeeze(1)
    if stats is not None:
        stats.rows += scores.shape[0]
    if rows.numel() == 0:
        return scores
    p, c = probs[rows], cap[rows]
    kept = torch.minimum(p, c).sum(-1)
    ok = kept > 0
    if stats is not None:
        stats.changed += int(ok.sum())
        stats.no_safe_token += int((~ok).sum())
        stats.removed_mass += float((1.0 - kept[ok]).sum())
    rows, p, c = rows[ok], p[ok], c[ok]
    for _ in range(rounds):
        p = torch.minimum(p, c)
        p = p / p.sum(-1, keepdim=True)
    out = scores.clone()
    out[rows] = p.log().to(scores.dtype)
    return out
