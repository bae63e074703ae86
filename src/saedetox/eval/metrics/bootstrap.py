"""Numeric helpers the metrics share: the prompt-level bootstrap CI (BCa) and strict-JSON values.

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
from scipy.special import ndtr, ndtri

#: resample statistics this close (relative) to the estimate count as ties in BCa's bias correction
TIE_RTOL = 1e-9


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


def _bca_parameters(est: float, boot: np.ndarray, jack: np.ndarray) -> tuple[np.ndarray, float, float] | None:
    """(defined resamples, z0, a) of :func:`bca_interval`; None when nothing is defined. ``z0 = a = 0`` (the
    percentile interval) where the correction is undefined (every resample on one side, or all equal)."""
    boot = np.asarray(boot, dtype=np.float64)
    boot = boot[np.isfinite(boot)]
    if not math.isfinite(est) or not boot.size:
        return None
    tie = np.abs(boot - est) <= TIE_RTOL * abs(est)  # a resample that is the sample reordered: last bits only
    z0 = float(ndtri(((boot < est) & ~tie).sum() / boot.size + 0.5 * tie.sum() / boot.size))
    jack = np.asarray(jack, dtype=np.float64)
    jack = jack[np.isfinite(jack)]
    n = jack.size
    a = 0.0
    if n > 1:
        u = (n - 1) * (jack.mean() - jack)
        den = (u**2).sum() / n**2
        a = float((u**3).sum() / n**3 / (6 * den**1.5)) if den > 0 else 0.0
    if not math.isfinite(z0) or not math.isfinite(a) or boot.min() == boot.max():
        return boot, 0.0, 0.0
    return boot, z0, a


def bca_interval(est: float, boot: np.ndarray, jack: np.ndarray, alpha: float = 0.05) -> tuple[float, float]:
    """BCa interval (Efron & Tibshirani 14.3, 15.4) from the estimate, its bootstrap and jackknife values.

    ``boot``: the statistic on each bootstrap resample; ``jack``: on each leave-one-prompt-out sample.
    The bias correction ``z0 = Φ⁻¹(share of resamples below the estimate, ties counted half)``, a tie being
    within :data:`TIE_RTOL` of the estimate (so values that differ only in their last bits give one interval), the
    acceleration ``a = Σ U³ / (6 (Σ U²)^{3/2})`` with ``U_i = (n − 1)(mean(jack) − jack_i)``, and the
    interval is the linear-interpolated quantiles of ``boot`` at ``Φ(z0 + (z0 + z)/(1 − a(z0 + z)))``
    for ``z = Φ⁻¹(α/2)`` and ``Φ⁻¹(1 − α/2)``: ``scipy.stats.bootstrap(method="BCa")``'s formula. Undefined
    (NaN) resamples and jackknife values are left out; where the correction is undefined (every resample
    on one side of the estimate, or all equal) the percentile interval is returned.
    """
    got = _bca_parameters(est, boot, jack)
    if got is None:
        return math.nan, math.nan
    boot, z0, a = got
    z = float(ndtri(alpha / 2))
    levels = [ndtr(z0 + (z0 + zz) / (1 - a * (z0 + zz))) for zz in (z, -z)]
    if not all(math.isfinite(v) for v in levels):
        return percentile_ci(boot, alpha)
    lo, hi = np.quantile(boot, levels)
    return float(lo), float(hi)


def _crossing(sorted_boot: np.ndarray, upper: bool) -> float:
    """The level where ``np.quantile(boot, level)`` (linear interpolation) leaves ``≤ 0`` (``upper`` False:
    the largest level whose quantile is ≤ 0) or reaches ``≥ 0`` (``upper``: the smallest level whose quantile
    is ≥ 0); −inf / +inf when no level qualifies."""
    x, m = sorted_boot, sorted_boot.size
    if m == 1:
        return (0.0 if x[0] >= 0 else math.inf) if upper else (1.0 if x[0] <= 0 else -math.inf)
    if not upper:
        if x[0] > 0:
            return -math.inf
        j = int(np.searchsorted(x, 0.0, side="right")) - 1  # last index with x ≤ 0
        if j == m - 1:
            return 1.0
        h = j + (0.0 - x[j]) / (x[j + 1] - x[j])
    else:
        if x[-1] < 0:
            return math.inf
        j = int(np.searchsorted(x, 0.0, side="left"))  # first index with x ≥ 0
        if j == 0:
            return 0.0
        h = (j - 1) + (0.0 - x[j - 1]) / (x[j] - x[j - 1])
    return float(h / (m - 1))


def _side_alpha(level: float, z0: float, a: float, upper: bool) -> float:
    """The α at which the BCa bound (lower, or ``upper``) sits at quantile ``level``: the inverse of the level map."""
    if level in (-math.inf, math.inf):  # no level reaches 0 on this side (every α excludes) or every level does
        return 0.0 if (level == -math.inf) != upper else 1.0
    w = float(ndtri(level)) - z0  # level = Φ(z0 + w), w = (z0 + z)/(1 − a(z0 + z))
    sign = -1.0 if upper else 1.0  # the upper bound uses −z
    if math.isinf(w):  # level 0 or 1: reached at z0 + z = 1/a where a has w's sign, else only as z → ±∞
        zz = (1.0 / a if a * w > 0 else w) - z0
    elif 1 + a * w <= 0:  # beyond the levels the transformation reaches
        return 0.0 if w * sign < 0 else 1.0
    else:
        zz = w / (1 + a * w) - z0
    return float(min(1.0, 2 * ndtr(sign * zz)))


def bca_pvalue(est: float, boot: np.ndarray, jack: np.ndarray) -> float:
    """Two-sided p for "the statistic is 0": the smallest α at which :func:`bca_interval` excludes 0.

    The test inversion of the BCa interval: each bound's level ``Φ(z0 + (z0 + z)/(1 − a(z0 + z)))`` is
    solved for the α whose bound is exactly 0 (the quantile function inverted with the same linear
    interpolation), and ``p`` is the smaller of the two sides' α. So ``bca_interval(..., alpha)`` excludes 0
    exactly when ``p < alpha``, for every α where the level map is increasing (``1 − a(z0 + z) > 0``; |a| is
    small in practice). With ``z0 = a = 0`` it is twice the smaller share of resamples on one side of 0, the
    share counted as ``np.quantile`` does (``(i − 1)/(B − 1)`` at the i-th smallest value, interpolated). NaN
    when nothing is defined; 0 when no resample lies on 0's side of the interval.
    """
    got = _bca_parameters(est, boot, jack)
    if got is None:
        return math.nan
    boot, z0, a = got
    x = np.sort(boot)
    lower = _side_alpha(_crossing(x, upper=False), z0, a, upper=False)
    upper = _side_alpha(_crossing(x, upper=True), z0, a, upper=True)
    return float(min(lower, upper, 1.0))


def bootstrap_ci(
    per_prompt_values: np.ndarray | Sequence[Any],
    stat: Callable[[np.ndarray], float] = np.mean,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """BCa bootstrap CI of ``stat``, resampling prompts (rows of ``per_prompt_values``) with replacement.

    Rows may be vectors (e.g. ``[sum, count]`` for a ratio statistic); ``stat`` maps the
    resampled array to a number. The resamples are ``scipy.stats.bootstrap``'s (``method="BCa"``,
    ``rng = np.random.default_rng(seed)``), so deterministic given ``seed``; the interval is
    :func:`bca_interval` over them and the jackknife (scipy's formula, with near-ties to the estimate
    counted as ties, and undefined resamples left out); a single prompt gives a zero-width interval.
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
            method="BCa",
            confidence_level=1 - alpha,
            rng=np.random.default_rng(seed),
        )
    with np.errstate(invalid="ignore", divide="ignore"):
        est = float(stat(values))
        jack = np.array([stat(np.delete(values, i, axis=0)) for i in range(n)], dtype=np.float64)
    return bca_interval(est, res.bootstrap_distribution, jack, alpha)


def mean_or_nan(x: np.ndarray) -> float:
    return float(x.mean()) if x.size else math.nan


def none_if_nan(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def ci_list(pair: tuple[float, float]) -> list[float | None]:
    return [none_if_nan(v) for v in pair]
