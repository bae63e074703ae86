"""The joint gate: thresholds at one common quantile level, checked against brute force and held-out draws."""

from __future__ import annotations

import numpy as np
import pytest

from saedetox.discover.gate import (
    auroc,
    calibrate_detector,
    detector_window_logits,
    false_open_rate,
    gate_margin,
    joint_thresholds,
    opens,
    per_latent_open,
    window_maxima,
)
from saedetox.errors import SaedetoxError


def _clean(n: int, seed: int) -> np.ndarray:
    """Per-window maxima of 6 latents: sparse (often 0) and on different scales, some correlated."""
    rng = np.random.default_rng(seed)
    base = rng.exponential(1.0, (n, 6)) * np.array([1, 2, 0.5, 3, 1, 1])
    base[:, 4] = base[:, 0] * 0.8 + rng.exponential(0.2, n)
    return np.where(rng.random((n, 6)) < 0.6, 0.0, base)


def test_hand_toy_counts():
    mx = np.array([[0.0, 1.0], [2.0, 0.0], [0.5, 0.5], [3.0, 3.0]])
    th = [1.0, 1.0]  # strict: a latent exactly at its threshold does not open
    assert opens(mx, th).tolist() == [False, True, False, True]
    assert false_open_rate(mx, th) == 0.5
    assert per_latent_open(mx, th).tolist() == [0.5, 0.25]
    np.testing.assert_allclose(gate_margin(mx, th), [0.0, 1.0, -0.5, 2.0])
    assert ((gate_margin(mx, th) > 0) == opens(mx, th)).all()
    assert window_maxima([np.array([[1.0, 0.0], [0.0, 2.0]]), np.zeros((0, 2))]).tolist() == [[1.0, 2.0], [0.0, 0.0]]


def test_joint_level_is_the_smallest_that_meets_the_rate():
    cal = _clean(2000, 0)
    th, q = joint_thresholds(cal, 0.05)
    assert false_open_rate(cal, th) <= 0.05
    # a second computation: a fine grid of levels, each latent's threshold its np.quantile at that level
    grid = np.linspace(0, 1, 401)
    rates = np.array([((cal > np.quantile(cal, g, axis=0)).any(1)).mean() for g in grid])
    first = grid[np.argmax(rates <= 0.05)]
    assert first - 1 / 400 <= q <= first + 1e-9
    # one level for all: every threshold is its latent's quantile at q
    np.testing.assert_allclose(th, [np.quantile(cal[:, j], q) for j in range(cal.shape[1])])


@pytest.mark.parametrize("rate", [0.05, 0.10])
def test_gate_set_to_a_rate_opens_on_that_share_of_heldout_windows(rate):
    th, _ = joint_thresholds(_clean(4000, 1), rate)
    held = _clean(20000, 2)  # windows the calibration never saw
    got = false_open_rate(held, th)
    assert abs(got - rate) < 0.015, got
    # while per-latent thresholds at the same rate open the set far more often
    per_latent = np.quantile(_clean(4000, 1), 1 - rate, axis=0)
    assert false_open_rate(held, per_latent) > 2 * rate


def test_bad_rates_are_refused():
    with pytest.raises(SaedetoxError):
        joint_thresholds(_clean(10, 0), 1.0)
    with pytest.raises(SaedetoxError):
        joint_thresholds(np.zeros((0, 3)), 0.05)


def _acts(n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.exponential(1.0, (int(rng.integers(5, 30)), 3)) for _ in range(n)]


@pytest.mark.parametrize("pooling", ["max", "token"])
def test_detector_calibrated_to_the_rate(pooling):
    det = {"kind": "latents", "latents": [0, 1, 2], "coef": [1.0, -0.5, 2.0], "scale": [1.0, 2.0, 1.5]}
    det.update(intercept=3.0, pooling=pooling)
    cal = calibrate_detector(det, _acts(1000, 0), 0.05)
    z = detector_window_logits(cal, _acts(1000, 0))
    assert (z >= 0).mean() <= 0.05 and (z >= 0).mean() > 0.04
    assert abs((detector_window_logits(cal, _acts(5000, 1)) >= 0).mean() - 0.05) < 0.015
    # by hand: the window's largest per-position log-odds (token) or the log-odds of its maxima (max)
    a = _acts(1, 3)[0]
    coef, scale = np.array(det["coef"]), np.array(det["scale"])
    want = (a / scale) @ coef + det["intercept"]
    want = want.max() if pooling == "token" else (a.max(0) / scale) @ coef + det["intercept"]
    assert detector_window_logits(det, [a])[0] == pytest.approx(want)
    assert cal["intercept_fit"] == det["intercept"]


def test_auroc_by_hand():
    # positives 0.35, 0.8 vs negatives 0.1, 0.4: 0.35 beats one of two, 0.8 both: 3 of 4 pairs
    assert auroc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == pytest.approx(0.75)
    # a tie counts half: 0.4 vs 0.4
    assert auroc(np.array([0.1, 0.4, 0.4, 0.8]), np.array([0, 0, 1, 1])) == pytest.approx(0.875)
    # a binary gate: AUROC = (TPR + TNR) / 2
    assert auroc(np.array([1, 0, 1, 1, 0]), np.array([1, 1, 0, 1, 0])) == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert auroc(np.array([0.1, 0.2]), np.array([1, 1])) is None
