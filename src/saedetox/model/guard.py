"""Non-finite next-token scores: one clear line instead of torch's "probability tensor contains nan".

A temperature near zero, an extreme steering strength or damaged weights turn logits into NaN
or ±inf; sampling then fails deep inside ``torch.multinomial`` (or, greedy, silently picks token
0). Samplers call :func:`check_scores` on each step's scores (after temperature, before the
nucleus filter puts its legitimate ``-inf`` in). On CPU, and on GPU where the loop already
synchronises each step, the check costs one reduction over ``[B, V]``; a loop that never
synchronises can use :class:`FiniteFlag` and check once per batch instead.
"""

from __future__ import annotations

import torch

from saedetox.errors import SaedetoxError

NON_FINITE = (
    "The model's next-token scores became NaN or infinite during sampling{where}: the temperature or the "
    "steering strength is too extreme for this model, or its weights are damaged."
)


def scores_finite(scores: torch.Tensor) -> torch.Tensor:
    """A 0-d bool tensor (no host sync): every row's maximum is finite.

    ``amax`` propagates NaN, is ``+inf`` when any score is, and ``-inf`` when a row holds no finite
    score, so this one reduction covers every way sampling can break.
    """
    return torch.isfinite(scores.amax(dim=-1)).all()


def check_scores(scores: torch.Tensor, step: int | None = None) -> None:
    """Raise one clear :class:`SaedetoxError` when ``scores`` ``[B, V]`` cannot be sampled from (syncs once)."""
    if not bool(scores_finite(scores)):
        raise SaedetoxError(NON_FINITE.format(where="" if step is None else f" (generation step {step + 1})"))


class FiniteFlag:
    """Accumulate :func:`scores_finite` over the steps of a batch on the device; :meth:`check` syncs once."""

    def __init__(self) -> None:
        self._ok: torch.Tensor | None = None

    def update(self, scores: torch.Tensor) -> None:
        ok = scores_finite(scores)
        self._ok = ok if self._ok is None else self._ok & ok

    def check(self) -> None:
        if self._ok is not None and not bool(self._ok):
            raise SaedetoxError(NON_FINITE.format(where=""))
        self._ok = None
