"""Numeric helpers the metrics share: the prompt-level bootstrap CI and strict-JSON values.

Undefined values (nothing to average) are ``None`` in the summary dicts, so metrics.json stays
strict JSON.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import stats as sps


def resample_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    """``[n_boot, n]`` prompt indices drawn with replacement: the draws ``scipy.stats.bootstrap`` makes.

    ``scipy.stats.bootstrap(..., n_resamples=n_boot, rng=np.random.default_rng(seed))`` resamples
    with ``rng.integers(0, n, (n_boot, n))`` when all resamples fit one batch; statistics that
    scipy cannot take (several curves re-interpolated per resample) use these same draws.
    """
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def percentile_ci(dist: np.ndarray, alpha: float = 0.05) -> tuple[float, float]:
    """Percentile interval of a bootstrap distribution, ignoring undefined (NaN) resamples."""
    dist = np.asarray(dist, dtype=np.float64)
    if not np.isfinite(dist).any():
        return math.nan, math.nan
    lo, hi = np.nanpercentile(dist[np.isfinite(dist)], [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(lo), float(hi)


def bootstrap_ci(
    per_prompt_values: np.ndarray | Sequence[Any],
    stat: Callable[[np.ndarray], float] = np.mean,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """Percentile bootstrap CI of ``stat``, resampling prompts (rows of ``per_prompt_values``) with replacement.

    Rows may be vectors (e.g. ``[sum, count]`` for a ratio statistic); ``stat`` maps the
    resampled array to a number. Computed by ``scipy.stats.bootstrap`` (percentile method,
    ``rng = np.random.default_rng(seed)``), so deterministic given ``seed``; its draws are the
    ones the earlier hand-rolled bootstrap made, so the intervals are unchanged. Resamples where
    ``stat`` is undefined (NaN) are left out of the percentiles; a single prompt gives a
    zero-width interval.
    """
    values = np.asarray(per_prompt_values, dtype=np.float64)
    n = values.shape[0] if values.ndim else 0
    if n == 0:
        return math.nan, math.nan
    if n == 1:
        v = float(stat(values))
        return v, v

    def on_indices(idx: np.ndarray, axis: int = -1) -> np.ndarray:
        rows = np.atleast_2d(idx)
        if stat is np.mean and values.ndim == 1:  # the common case, one reduction per resample row at once
            out = values[rows].mean(axis=1)
        else:
            out = np.array([stat(values[r]) for r in rows], dtype=np.float64)
        return out if idx.ndim > 1 else out[0]

    with warnings.catch_warnings():  # NaN resamples: scipy warns and gives NaN; handled below
        warnings.simplefilter("ignore")
        res = sps.bootstrap(
            (np.arange(n),),
            on_indices,
            n_resamples=n_boot,
            vectorized=True,
            method="percentile",
            confidence_level=1 - alpha,
            rng=np.random.default_rng(seed),
        )
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if math.isfinite(lo) and math.isfinite(hi):
        return lo, hi
    return percentile_ci(res.bootstrap_distribution, alpha)


def mean_or_nan(x: np.ndarray) -> float:
    return float(x.mean()) if x.size else math.nan


def none_if_nan(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def ci_list(pair: tuple[float, float]) -> list[float | None]:
    return [none_if_nan(v) for v in pair]
