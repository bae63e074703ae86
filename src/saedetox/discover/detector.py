"""The selected latents as one toxicity detector: fitted on the rank split, scored on the test split.

Features are the per-text maxima of the selected latents (BOS and padding excluded), divided by
their standard deviation on the rank split (``scale``); a logistic regression on them gives
p(toxic). features.json stores it as ``detector``::

    {"kind": "latents", "latents": [...], "coef": [...], "intercept": b, "scale": [...], "pooling": "max"}

and :func:`detector_probability` evaluates it on latent activations (torch or numpy) wherever
steering needs it: ``pooling="max"`` uses the running maximum over the positions seen so far
(at the last position: the whole text's maximum, as in the fit), ``"token"`` each position alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from saedetox.errors import SaedetoxError

A = TypeVar("A", torch.Tensor, np.ndarray)
POOLINGS = ("max", "token")


def fit_detector(
    latents: Sequence[int],
    x: np.ndarray,
    y: np.ndarray,
    pooling: str = "max",
    class_weight: str | None = None,
    **notes: Any,
) -> dict[str, Any] | None:
    """Logistic regression on features ``x[n, len(latents)]`` (labels ``y``: 1 toxic); None if one class.

    Default: per-text maxima (``pooling`` max); ``notes`` are stored with the detector (e.g. its target).
    """
    if len(np.unique(y)) < 2 or x.shape[1] == 0:
        return None
    scale = x.std(0) + 1e-6
    clf = LogisticRegression(max_iter=2000, class_weight=class_weight).fit(x / scale, y)
    return {
        "kind": "latents",
        "latents": [int(i) for i in latents],
        "coef": [float(c) for c in clf.coef_[0]],
        "intercept": float(clf.intercept_[0]),
        "scale": [float(s) for s in scale],
        "pooling": pooling,
        **notes,
    }


def _params(detector: dict[str, Any], like: A) -> tuple[A, A, float]:
    coef, scale, b = detector.get("coef"), detector.get("scale"), detector.get("intercept")
    if not isinstance(coef, list) or not isinstance(scale, list) or len(coef) != len(scale) or b is None:
        raise SaedetoxError("A detector needs 'coef' and 'scale' lists of equal length and an 'intercept'.")
    if isinstance(like, torch.Tensor):
        dt = like.dtype if like.is_floating_point() else torch.float32
        return torch.tensor(coef, dtype=dt, device=like.device), torch.tensor(scale, dtype=dt, device=like.device), b
    return np.asarray(coef, dtype=np.float64), np.asarray(scale, dtype=np.float64), b


def detector_logit(detector: dict[str, Any], pooled: A) -> A:
    """Log-odds of toxicity from already pooled features ``pooled[..., n]``."""
    coef, scale, b = _params(detector, pooled)
    if pooled.shape[-1] != len(coef):
        raise SaedetoxError(f"The detector reads {len(coef)} latents; got activations of {pooled.shape[-1]}.")
    return (pooled / scale) @ coef + b


def detector_probability(detector: dict[str, Any], acts: A, mask: A | None = None, pooling: str | None = None) -> A:
    """p(toxic) per position from activations ``acts[..., T, n]`` of the detector's latents (in its order).

    ``mask[..., T]`` (1 = real token) zeroes positions before pooling (BOS, padding). With
    ``pooling="max"`` (the detector's own), position t sees the maximum over positions ≤ t; with
    ``"token"``, position t alone. Returns ``[..., T]``.
    """
    pooling = pooling or str(detector.get("pooling", "max"))
    if pooling not in POOLINGS:
        raise SaedetoxError(f"Unknown detector pooling '{pooling}': use {', '.join(POOLINGS)}.")
    if mask is not None:
        acts = acts * mask[..., None]
    if pooling == "max":
        acts = torch.cummax(acts, dim=-2).values if isinstance(acts, torch.Tensor) else np.maximum.accumulate(acts, -2)
    z = detector_logit(detector, acts)
    return torch.sigmoid(z) if isinstance(z, torch.Tensor) else 1.0 / (1.0 + np.exp(-z))


def set_detector_auroc(
    rank_x: np.ndarray, rank_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray
) -> tuple[float, float]:
    """Test AUROC of the detector fitted on the rank split, and of the plain sum of the maxima (no fit)."""
    summed = float(roc_auc_score(test_y, test_x.sum(1)))
    det = fit_detector(list(range(rank_x.shape[1])), rank_x, rank_y)
    if det is None:
        return summed, summed
    return float(roc_auc_score(test_y, detector_logit(det, test_x))), summed
