"""What every judge is: the :class:`Judge` protocol and the batching and clipping they share."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

import numpy as np


class Judge(Protocol):
    """A toxicity judge: one score in [0, 1] per text, same order, higher = more toxic."""

    name: str

    def score(self, texts: Sequence[str]) -> np.ndarray: ...


def batches(texts: Sequence[str], size: int) -> Iterator[list[str]]:
    """``texts`` as strings, ``size`` at a time."""
    for i in range(0, len(texts), size):
        yield [str(t) for t in texts[i : i + size]]


def finish(scores: list[float] | np.ndarray, n: int) -> np.ndarray:
    """Scores as a float64 vector clipped to [0, 1], checked to hold one score per text."""
    out = np.clip(np.asarray(scores, dtype=np.float64).reshape(-1), 0.0, 1.0)
    if out.shape != (n,):
        raise RuntimeError(f"judge returned {out.shape[0]} scores for {n} texts")
    return out
