"""The ``meandiff`` baseline: contrastive mean-difference steering (CAA / ActAdd style).

The unit vector of mean(toxic activations) − mean(clean activations) at the same hook as the
SAE, subtracted at every position. Strength tiers match the SAE tiers by vector norm (same
fraction of the median residual norm); push levels match effective push.

``meandiff-adaptive`` scales that push per position by its own detector, as SAE adaptive mode
does with the SAE's: a logistic regression on the per-text maximum of the projection x · v̂
(BOS and padding excluded), fitted on the same contrast data as the direction, so the two
adaptive methods differ only in what they steer with and detect with.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from saedetox.errors import SaedetoxError
from saedetox.methods.base import Method
from saedetox.methods.contrast import ContrastData, cached, max_projection, max_projection_of, token_mean
from saedetox.methods.sae import steering_method
from saedetox.model.load import LoadedModel
from saedetox.steering.spec import Intervention, SteeringSpec


def meandiff_direction(lm: LoadedModel, hook: str, data: ContrastData) -> torch.Tensor:
    """The unit mean difference; the pass keeps the token activations (when they fit) for the detector."""
    tox: list[torch.Tensor] = []
    cln: list[torch.Tensor] = []
    v = token_mean(lm, data.toxic, hook, keep=tox) - token_mean(lm, data.clean, hook, keep=cln)
    if len(tox) == len(data.toxic) and len(cln) == len(data.clean):
        data.cache[_tokens_key(lm, hook)] = (tox, cln)
    if float(v.norm()) == 0:
        raise SaedetoxError("Toxic and clean texts give the same mean activation; cannot build a direction.")
    return v / v.norm()


def fit_logistic_detector(toxic: np.ndarray, clean: np.ndarray, kind: str, pooling: str = "max") -> dict[str, Any]:
    """A detector (steering-spec schema) from per-text features ``[n, k]`` of toxic and clean texts.

    Features are divided by their standard deviation (``scale``) before an L2-regularised
    logistic regression (C = 1), the same recipe as discovery's latent detector.
    """
    x = np.concatenate([toxic, clean]).astype(np.float64)
    y = np.r_[np.ones(len(toxic)), np.zeros(len(clean))]
    if len(toxic) == 0 or len(clean) == 0:
        raise SaedetoxError("A detector needs toxic and clean texts.")
    scale = x.std(0) + 1e-6
    clf = LogisticRegression(max_iter=2000).fit(x / scale, y)
    return {
        "kind": kind,
        "coef": [float(c) for c in clf.coef_[0]],
        "intercept": float(clf.intercept_[0]),
        "scale": [float(s) for s in scale],
        "pooling": pooling,
    }


def projection_detector(
    lm: LoadedModel, hook: str, data: ContrastData, direction: torch.Tensor, pooling: str = "max"
) -> dict[str, Any]:
    """The mean-difference direction's own detector: logistic regression on the per-text max projection.

    The projections come from the token activations the direction's pass kept, when it kept them
    (the same activations a second pass would give), otherwise from a second pass.
    """
    kept = data.cache.get(_tokens_key(lm, hook))
    if kept is not None:
        tox, cln = (max_projection_of(t, direction).numpy()[:, None] for t in kept)
    else:
        tox = max_projection(lm, data.toxic, hook, direction).numpy()[:, None]
        cln = max_projection(lm, data.clean, hook, direction).numpy()[:, None]
    return fit_logistic_detector(tox, cln, "projection", pooling)


def _tokens_key(lm: LoadedModel, hook: str) -> tuple[Any, ...]:
    return ("meandiff-tokens", id(lm.model), hook)


def meandiff_spec(
    direction: torch.Tensor,
    hook: str,
    tier: str | float | None,
    strength: float | None,
    mode: str = "constant",
    push: float | None = None,
    detector: dict[str, Any] | None = None,
) -> SteeringSpec:
    iv = Intervention(
        vector=direction.tolist(),
        hook=hook,
        tier=tier if push is None else None,
        strength=strength,
        push=push,
        mode=mode,
        detector=detector,
        label="meandiff" if mode == "constant" else f"meandiff-{mode}",
    )
    return SteeringSpec([iv]).validate()


def meandiff_method(
    lm: LoadedModel,
    hook: str,
    data: ContrastData,
    tier: str | float | None,
    strength: float | None,
    mode: str = "constant",
    push: float | None = None,
    pooling: str = "max",
) -> Method:
    """Mean-difference steering: ``constant`` (the classic baseline) or ``adaptive`` (its own detector scales it)."""
    if mode not in ("constant", "adaptive"):
        raise SaedetoxError(f"Mean-difference steering has modes constant and adaptive, not '{mode}'.")
    direction = cached(data, ("meandiff", id(lm.model), hook), lambda: meandiff_direction(lm, hook, data))
    detector = None
    if mode == "adaptive":
        key = ("meandiff-detector", id(lm.model), hook, pooling)
        detector = cached(data, key, lambda: projection_detector(lm, hook, data, direction, pooling))
    m = steering_method(lm, meandiff_spec(direction, hook, tier, strength, mode, push, detector), "meandiff")
    m.details["sae"] = None
    return m
