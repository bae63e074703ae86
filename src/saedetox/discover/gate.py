"""A gate over a set of latents that selects: thresholds calibrated jointly to a clean false-open rate.

The conditional gate opens on a text when ANY selected latent f exceeds its threshold τ_f at any
position. With per-latent thresholds each at the 95th percentile of clean *sentences*, a set of
20 latents opens on most clean *windows* of prompt + continuation length. Here the thresholds
are one common quantile level q of each latent's per-window maximum on clean calibration
windows, τ_f(q) = quantile_q(max_t a_f on window), with q found by bisection as the smallest
level at which the SET opens on at most ``rate`` of those windows (:func:`joint_thresholds`).

The detector of adaptive steering gets the same treatment: its intercept is shifted so that
p ≥ 0.5 (what push statistics count as "opened") on at most ``rate`` of the windows
(:func:`calibrate_detector`); for pooling ``token`` the window's largest per-position log-odds
counts, for ``max`` the log-odds of the window's maxima. A shift of the intercept leaves the
detector's ranking, hence its AUROC, unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from saedetox.discover.detector import detector_logit
from saedetox.errors import SaedetoxError

BISECTION_STEPS = 60


def window_maxima(acts: Sequence[np.ndarray], k: int | None = None) -> np.ndarray:
    """``[n, k]``: per text, each latent's maximum over its positions (0 for a text without positions)."""
    if not acts:
        return np.zeros((0, k or 0), dtype=np.float32)
    k = acts[0].shape[1] if k is None else k
    return np.stack([a.max(0) if len(a) else np.zeros(k, dtype=np.float32) for a in acts])


def opens(maxima: np.ndarray, thresholds: Sequence[float] | np.ndarray) -> np.ndarray:
    """``[n]`` bool: whether the gate opens on each text (some latent strictly above its threshold)."""
    return (np.asarray(maxima) > np.asarray(thresholds, dtype=np.float64)[None, :]).any(1)


def false_open_rate(maxima: np.ndarray, thresholds: Sequence[float] | np.ndarray) -> float:
    """Share of (clean) texts on which the set's gate opens."""
    return float(opens(maxima, thresholds).mean()) if len(maxima) else float("nan")


def per_latent_open(maxima: np.ndarray, thresholds: Sequence[float] | np.ndarray) -> np.ndarray:
    """``[k]``: per latent, the share of texts on which it alone would open the gate."""
    return (np.asarray(maxima) > np.asarray(thresholds, dtype=np.float64)[None, :]).mean(0)


def _levels(maxima: np.ndarray, q: float) -> np.ndarray:
    return np.quantile(maxima, q, axis=0)


def joint_thresholds(maxima: np.ndarray, rate: float) -> tuple[list[float], float]:
    """Per-latent thresholds at one common quantile level q, the smallest q whose set false-open ≤ ``rate``.

    ``maxima`` ``[n, k]`` are the latents' per-window maxima on clean calibration windows. The
    set's false-open rate falls as q rises (each τ_f rises), and at q = 1 (each τ_f the largest
    value seen) no window opens, so bisection on q finds the level. Returns (thresholds, q).
    """
    if not 0 <= rate < 1:
        raise SaedetoxError(f"The gate's false-open rate must be in [0, 1), got {rate}.")
    maxima = np.asarray(maxima, dtype=np.float64)
    if maxima.ndim != 2 or maxima.shape[0] == 0 or maxima.shape[1] == 0:
        raise SaedetoxError("Gate calibration needs at least one clean window and one latent.")
    lo, hi = 0.0, 1.0  # false_open(hi) ≤ rate always holds
    if false_open_rate(maxima, _levels(maxima, lo)) <= rate:
        hi = lo
    for _ in range(BISECTION_STEPS):
        if hi - lo < 1e-12:
            break
        mid = (lo + hi) / 2
        if false_open_rate(maxima, _levels(maxima, mid)) <= rate:
            hi = mid
        else:
            lo = mid
    return [float(t) for t in _levels(maxima, hi)], float(hi)


def detector_window_logits(detector: dict[str, Any], acts: Sequence[np.ndarray]) -> np.ndarray:
    """``[n]``: per window, the detector's largest log-odds over its positions (pooling as the detector's)."""
    k = len(detector["coef"])
    if str(detector.get("pooling", "max")) == "max":
        return np.asarray(detector_logit(detector, window_maxima(acts, k).astype(np.float64)))
    return np.array(
        [float(np.max(detector_logit(detector, a.astype(np.float64)))) if len(a) else -np.inf for a in acts]
    )


def calibrate_detector(detector: dict[str, Any], acts: Sequence[np.ndarray], rate: float) -> dict[str, Any]:
    """A copy of ``detector`` whose intercept makes p ≥ 0.5 on at most ``rate`` of the windows ``acts``."""
    if not 0 <= rate < 1:
        raise SaedetoxError(f"The detector's false-open rate must be in [0, 1), got {rate}.")
    z = detector_window_logits(detector, acts)
    z = z[np.isfinite(z)]
    if not len(z):
        return dict(detector)
    top = float(np.quantile(z, 1 - rate, method="higher"))
    shift = -top - 1e-6 * max(1.0, abs(top))  # windows at or below the quantile end strictly below 0
    return {**detector, "intercept": float(detector["intercept"]) + shift, "intercept_fit": detector["intercept"]}


def gate_margin(
    maxima: np.ndarray, thresholds: Sequence[float] | np.ndarray, scale: np.ndarray | None = None
) -> np.ndarray:
    """``[n]``: max_f (a_f − τ_f) / s_f, the gate's continuous score (it opens exactly where this is > 0).

    ``scale`` (default 1) puts the latents on one footing, e.g. their standard deviation on clean windows.
    """
    m = np.asarray(maxima, dtype=np.float64) - np.asarray(thresholds, dtype=np.float64)[None, :]
    if scale is not None:
        m = m / np.maximum(np.asarray(scale, dtype=np.float64), 1e-12)[None, :]
    return m.max(1)


def auroc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """AUROC of ``scores`` for binary ``labels`` (ties count half); None when one class is missing."""
    labels = np.asarray(labels).astype(int)
    if len(np.unique(labels)) < 2:
        return None
    return float(roc_auc_score(labels, np.asarray(scores, dtype=np.float64)))
