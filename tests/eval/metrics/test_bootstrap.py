"""The BCa interval: by hand against scipy's BCa on plain statistics, and the prompt-level CI."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from saedetox.eval.metrics.bootstrap import bca_interval, bca_pvalue, bootstrap_ci, percentile_ci, resample_indices


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


def _paired_case(seed: int) -> tuple[float, np.ndarray, np.ndarray]:
    """A paired mean difference on random data (its effect drawn too, so some cases sit near the 5% boundary)."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(15, 80))
    a = rng.lognormal(0.0, 1.0, n)
    b = a * np.exp(rng.normal(0.0, 0.3, n)) + rng.normal(rng.normal(0.0, 0.25), 0.6, n)
    d = a - b
    boot = d[resample_indices(n, 400, seed)].mean(axis=1)
    return float(d.mean()), boot, (d.sum() - d) / (n - 1)


def test_bca_p_is_the_test_inversion_of_the_bca_interval():
    """CI excludes 0 ⇔ p < alpha, on random paired data, at several levels; and the bound at alpha = p sits on 0."""
    near = 0
    for seed in range(300):
        est, boot, jack = _paired_case(seed)
        p = bca_pvalue(est, boot, jack)
        for alpha in (0.05, 0.01, 0.2):
            lo, hi = bca_interval(est, boot, jack, alpha)
            assert (lo > 0 or hi < 0) == (p < alpha), (seed, alpha, p, lo, hi)
        near += 0.02 < p < 0.1
        if 1e-6 < p < 1:  # at alpha = p one bound is 0 (the inversion solved for it)
            lo, hi = bca_interval(est, boot, jack, p)
            assert min(abs(lo), abs(hi)) < 1e-9 * max(1.0, abs(est))
    assert near >= 10  # the boundary was exercised, not only clear cases


def test_bca_p_with_no_correction_is_twice_the_smaller_share_by_hand():
    """z0 = a = 0 (resamples symmetric about the estimate, a symmetric jackknife): BCa is the percentile interval,
    and p is 2·min(share ≤ 0, share ≥ 0), the share counted on np.quantile's positions (i − 1)/(B − 1)."""
    # 201 resamples: the estimate 1.0 in the middle, 100 values either side, mirror images; 0 is one of them
    rng = np.random.default_rng(5)
    half = np.sort(rng.uniform(0.01, 2.0, 100))
    half[np.argmin(np.abs(half - 1.0))] = 1.0  # so 1.0 − 1.0 = 0 is a resample below the estimate
    boot = np.r_[1.0 - half, 1.0, 1.0 + half]
    jack = np.array([0.9, 1.0, 1.1])
    n_le, n_ge, b = int((boot <= 0).sum()), int((boot >= 0).sum()), boot.size
    assert n_le >= 1 and (boot == 0).sum() == 1
    want = 2 * min(n_le - 1, n_ge - 1) / (b - 1)  # the zero is the n_le-th smallest value
    assert bca_pvalue(1.0, boot, jack) == pytest.approx(want, abs=1e-12)
    assert bca_interval(1.0, boot, jack) == pytest.approx(percentile_ci(boot), abs=1e-12)
    # and against the share without interpolation: within one resample of 2·min(share ≤ 0, share ≥ 0)
    assert abs(bca_pvalue(1.0, boot, jack) - 2 * min(n_le, n_ge) / b) <= 2 / (b - 1)
    # every resample on one side of 0: no α keeps 0 in the interval, p = 0; the estimate at 0 exactly: p = 1
    assert bca_pvalue(1.0, boot + 5, jack + 5) == 0.0
    assert bca_pvalue(0.0, boot - 1.0, jack - 1.0) == pytest.approx(1.0)
    assert math.isnan(bca_pvalue(math.nan, boot, jack))


def test_bca_pvalue_when_resamples_reach_zero_but_not_beyond():
    """Every resample ≤ 0 and some exactly 0, with an acceleration that is 0 up to rounding: the upper
    bound sits on 0 for small α and drops below it only past the share of zeros, so p is that α, not 0."""
    boot = np.repeat([-1.0, -0.75, -0.5, -0.25, 0.0], [10, 54, 73, 48, 15])
    x = np.array([0, 1, 0, 0.0]) - np.array([1, 1, 1, 0.0])
    jack = (x.sum() - x) / 3
    p = bca_pvalue(-0.5, boot, jack)
    assert 0.1 < p < 0.25
    assert bca_interval(-0.5, boot, jack, alpha=p * 0.9)[1] == 0.0  # still touching 0 below p
    assert bca_interval(-0.5, boot, jack, alpha=min(1.0, p * 1.1))[1] < 0.0  # excludes 0 above p
