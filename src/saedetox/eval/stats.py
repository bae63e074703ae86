"""Numeric helpers the metrics share: the prompt-level bootstrap CI and strict-JSON values.

Undefined values (nothing to average) are ``None`` in the summary dicts, so metrics.json stays
strict JSON.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def bootstrap_ci(
    per_prompt_values: np.ndarray | Sequence[Any],
    stat: Callable[[np.ndarray], float] = np.mean,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """Percentile bootstrap CI of ``stat``, resampling prompts (rows of ``per_prompt_values``) with replacement.

    Rows may be vectors (e.g. ``[sum, count]`` for a ratio statistic); ``stat`` maps the
    resampled array to a number. Deterministic given ``seed``.
    """
    values = np.asarray(per_prompt_values, dtype=np.float64)
    n = values.shape[0] if values.ndim else 0
    if n == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    stats = np.array([stat(values[i]) for i in idx], dtype=np.float64)
    if np.isnan(stats).all():
        return math.nan, math.nan
    lo, hi = np.nanpercentile(stats, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(lo), float(hi)


def mean_or_nan(x: np.ndarray) -> float:
    return float(x.mean()) if x.size else math.nan


def none_if_nan(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def ci_list(pair: tuple[float, float]) -> list[float | None]:
    return [none_if_nan(v) for v in pair]
