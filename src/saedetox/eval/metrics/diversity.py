"""Diversity of continuations (DExperts ``distinctness``).

Per prompt, the number of distinct n-grams over all its samples divided by the total number of
whitespace tokens (``text.split(' ')``), then averaged over prompts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from saedetox.errors import SaedetoxError
from saedetox.eval.metrics.bootstrap import none_if_nan


def distinct_n(generations_per_prompt: Sequence[Sequence[str]], n: int) -> float:
    """DExperts dist-n: per prompt, distinct n-grams over all its samples / total whitespace tokens; mean over prompts.

    Tokens are ``text.split(' ')`` and n-grams are ``'_'``-joined strings within one sample, as in
    DExperts' ``distinctness``; prompts without samples are skipped.
    """
    if n < 1:
        raise SaedetoxError(f"distinct_n needs n ≥ 1, got {n}.")
    values = []
    for gens in generations_per_prompt:
        grams: set[str] = set()
        total = 0
        for gen in gens:
            words = gen.split(" ")
            total += len(words)
            grams.update("_".join(words[i : i + n]) for i in range(len(words) - n + 1))
        if total:
            values.append(len(grams) / total)
    return float(np.mean(values)) if values else math.nan


def diversity(generations_per_prompt: Sequence[Sequence[str]]) -> dict[str, float | None]:
    """``{"dist1", "dist2", "dist3"}`` as in DExperts."""
    return {f"dist{n}": none_if_nan(distinct_n(generations_per_prompt, n)) for n in (1, 2, 3)}
