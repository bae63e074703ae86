"""The set detector stored in features.json, evaluated from latent activations as steering does."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from saedetox.discover.detector import detector_logit, detector_probability, fit_detector, set_detector_auroc
from saedetox.errors import SaedetoxError


def _data(rng, n, y):
    """Activations [n, T, 3]: latent 0 fires on toxic texts, 1 is noise, 2 is a large-scale distractor."""
    acts = np.abs(rng.normal(0, 1, (n, 7, 3)))
    acts[:, :, 0] *= 0.3 + 1.5 * y
    acts[:, :, 2] *= 20
    return acts


def test_detector_probability_equals_sklearn_predict_proba():
    rng = np.random.default_rng(0)
    acts = np.r_[_data(rng, 200, 1), _data(rng, 200, 0)]
    y = np.r_[np.ones(200), np.zeros(200)]
    pooled = acts.max(1)
    det = fit_detector([5, 9, 11], pooled, y)
    assert det["latents"] == [5, 9, 11] and det["pooling"] == "max" and det["kind"] == "latents"
    scale = pooled.std(0) + 1e-6
    clf = LogisticRegression(max_iter=2000).fit(pooled / scale, y)
    want = clf.predict_proba(pooled / scale)[:, 1]
    # numpy and torch, per position with the running max: the last position sees the whole text
    p_np = detector_probability(det, acts)
    p_t = detector_probability(det, torch.tensor(acts, dtype=torch.float64))
    assert p_np.shape == (400, 7) and isinstance(p_t, torch.Tensor)
    np.testing.assert_allclose(p_np[:, -1], want, atol=1e-9)
    np.testing.assert_allclose(p_t[:, -1].numpy(), want, atol=1e-9)
    # the running max: position t sees exactly the prefix up to t
    for t in (0, 3):
        np.testing.assert_allclose(p_np[:, t], clf.predict_proba(acts[:, : t + 1].max(1) / scale)[:, 1], atol=1e-9)
    # per token, no pooling
    np.testing.assert_allclose(
        detector_probability(det, acts, pooling="token")[:, 2], clf.predict_proba(acts[:, 2] / scale)[:, 1], atol=1e-9
    )
    # a mask leaves out positions (BOS, padding)
    mask = np.ones((400, 7))
    mask[:, 0] = 0
    np.testing.assert_allclose(
        detector_probability(det, acts, mask=mask)[:, -1],
        clf.predict_proba(acts[:, 1:].max(1) / scale)[:, 1],
        atol=1e-9,
    )
    # float32 on the device of the activations, as steering calls it
    p32 = detector_probability(det, torch.tensor(acts, dtype=torch.float32))
    assert p32.dtype == torch.float32 and torch.allclose(p32[:, -1].double(), torch.tensor(want), atol=1e-5)


def test_detector_rejects_bad_input():
    det = {"coef": [1.0, 2.0], "scale": [1.0, 1.0], "intercept": 0.0, "pooling": "max"}
    with pytest.raises(SaedetoxError, match="reads 2 latents"):
        detector_logit(det, np.zeros((3, 5)))
    with pytest.raises(SaedetoxError, match="pooling"):
        detector_probability(det, np.zeros((1, 2, 2)), pooling="mean")
    with pytest.raises(SaedetoxError, match="coef"):
        detector_logit({"coef": [1.0]}, np.zeros((1, 1)))
    assert fit_detector([1], np.zeros((4, 1)), np.ones(4)) is None  # one class: nothing to fit


def test_set_detector_auroc_is_fitted_on_rank_and_scored_on_test():
    rng = np.random.default_rng(0)

    # latent 0 separates, latent 1 is noise with a large scale that swamps the plain sum
    def draw(n, y):
        return np.c_[rng.normal(y * 1.0, 0.5, n), rng.normal(0, 20, n)]

    tx = np.r_[draw(400, 1), draw(400, 0)]
    ty = np.r_[np.ones(400), np.zeros(400)]
    hx = np.r_[draw(300, 1), draw(300, 0)]
    hy = np.r_[np.ones(300), np.zeros(300)]
    fitted, summed = set_detector_auroc(tx, ty, hx, hy)
    # hand computation of the sum's AUROC: share of (pos, neg) pairs ranked correctly
    s = hx.sum(1)
    pos, neg = s[hy == 1], s[hy == 0]
    by_hand = (pos[:, None] > neg[None]).mean() + 0.5 * (pos[:, None] == neg[None]).mean()
    assert abs(summed - by_hand) < 1e-9
    assert fitted > 0.9 > summed
