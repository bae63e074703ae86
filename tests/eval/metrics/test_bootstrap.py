"""The BCa interval: by hand against scipy's BCa on plain statistics, and the prompt-level CI."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from saedetox.eval.metrics.bootstrap import bca_interval, bootstrap_ci, percentile_ci, resample_indices


def _scipy_bca(x, n_boot, seed, alpha=0.05):
    res = sps.bootstrap(
        (x,),
        np.mean,
        n_resamples=n_boot,
        method="BCa",
        confidence_level=1 - alpha,
        rng=np.random.default_rng(seed),
    )
    return res.confidence_interval.low, res.confidence_interval.high


@pytest.mark.parametrize("seed", [0, 7])
@pytest.mark.parametrize("alpha", [0.05, 0.2])
def test_bca_by_hand_matches_scipy_on_the_mean(seed, alpha):
    x = np.random.default_rng(seed + 100).lognormal(0.0, 1.2, 60)  # skewed: BCa differs from percentile
    n_boot = 999
    boot = x[resample_indices(x.size, n_boot, seed)].mean(axis=1)  # scipy's own draws
    jack = (x.sum() - x) / (x.size - 1)
    lo, hi = bca_interval(float(x.mean()), boot, jack, alpha)
    want = _scipy_bca(x, n_boot, seed, alpha)
    assert (lo, hi) == (pytest.approx(want[0], rel=1e-12), pytest.approx(want[1], rel=1e-12))
    plo, phi = percentile_ci(boot, alpha)
    assert (lo, hi) != (pytest.approx(plo), pytest.approx(phi))  # the correction moved the interval


def test_bca_by_hand_matches_scipy_on_a_binary_share():
    x = (np.random.default_rng(3).random(80) < 0.15).astype(float)  # a toxicity probability near 0
    boot = x[resample_indices(80, 500, 1)].mean(axis=1)
    jack = (x.sum() - x) / 79
    lo, hi = bca_interval(float(x.mean()), boot, jack)
    want = _scipy_bca(x, 500, 1)
    assert (lo, hi) == (pytest.approx(want[0], rel=1e-12), pytest.approx(want[1], rel=1e-12))


def test_bca_edge_cases():
    assert all(math.isnan(v) for v in bca_interval(math.nan, np.ones(5), np.ones(5)))
    assert all(math.isnan(v) for v in bca_interval(1.0, np.full(5, np.nan), np.ones(5)))
    assert bca_interval(0.25, np.full(9, 0.25), np.full(4, 0.25)) == (0.25, 0.25)  # degenerate: percentile
    boot = np.linspace(1.0, 2.0, 11)
    assert bca_interval(0.0, boot, np.zeros(3)) == percentile_ci(boot)  # every resample above: z0 undefined
    with_nan = np.append(boot, np.nan)
    assert bca_interval(1.5, with_nan, np.array([1.4, 1.5, np.nan, 1.6])) == bca_interval(
        1.5, boot, np.array([1.4, 1.5, 1.6])
    )


def test_bootstrap_ci_is_scipys_bca():
    v = np.random.default_rng(1).exponential(size=50)
    assert bootstrap_ci(v, n_boot=400, seed=3) == pytest.approx(_scipy_bca(v, 400, 3), rel=1e-12)
    rows = np.array([[2.0, 1.0], [9.0, 3.0], [0.0, 0.0]])  # 0 / 0 on the resamples that draw only the last row

    def ratio(a):
        with np.errstate(invalid="ignore"):
            return a[:, 0].sum() / a[:, 1].sum()

    lo, hi = bootstrap_ci(rows, ratio, n_boot=300)
    assert 2.0 <= lo <= 11 / 4 <= hi <= 3.0  # scipy gives NaN here; the hand BCa over the defined values does not
