"""Toxicity metrics (EMT, toxicity probability, summaries, bootstrap CIs) on hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from saedetox.errors import SaedetoxError
from saedetox.eval.metrics.bootstrap import bootstrap_ci
from saedetox.eval.metrics.toxicity import expected_max_toxicity, mean_toxicity, toxicity_probability, toxicity_summary


def test_toxicity_hand_values():
    s = np.array([[0.1, 0.9], [0.2, 0.3]])
    emt, std = expected_max_toxicity(s)
    assert emt == pytest.approx(0.6) and std == pytest.approx(0.3)  # maxes 0.9, 0.3; population std
    assert toxicity_probability(s) == pytest.approx(0.5)
    assert toxicity_probability(s, threshold=0.3) == pytest.approx(1.0)  # ≥, not >
    assert toxicity_probability(s, threshold=0.95) == pytest.approx(0.0)
    assert mean_toxicity(s) == pytest.approx(0.375)


def test_toxicity_nan_and_ragged():
    s = [[math.nan, 0.4], [math.nan, math.nan], [0.6]]
    assert expected_max_toxicity(s)[0] == pytest.approx(0.5)  # the all-NaN prompt is skipped
    assert toxicity_probability(s) == pytest.approx(0.5)
    assert mean_toxicity(s) == pytest.approx(0.5)
    assert math.isnan(expected_max_toxicity([])[0])


def test_toxicity_summary_and_prompt_split():
    s = np.array([[0.1, 0.9], [0.7, 0.7], [0.2, 0.3]])
    out = toxicity_summary(s, prompt_toxicity=[0.8, None, 0.1], n_boot=200)
    assert out["emt"] == pytest.approx((0.9 + 0.7 + 0.3) / 3)
    assert out["tox_prob"] == pytest.approx(2 / 3)
    assert out["mean"] == pytest.approx(2.9 / 6)
    assert out["n_prompts"] == 3
    lo, hi = out["emt_ci"]
    assert lo <= out["emt"] <= hi
    tox, non = out["by_prompt_toxicity"]["toxic"], out["by_prompt_toxicity"]["nontoxic"]
    assert (tox["n_prompts"], tox["emt"], tox["tox_prob"]) == (1, pytest.approx(0.9), 1.0)
    assert (non["n_prompts"], non["emt"], non["tox_prob"]) == (1, pytest.approx(0.3), 0.0)
    empty = toxicity_summary(s, prompt_toxicity=[0.1, 0.2, 0.3])["by_prompt_toxicity"]["toxic"]
    assert empty["n_prompts"] == 0 and empty["emt"] is None
    assert "by_prompt_toxicity" not in toxicity_summary(s)
    with pytest.raises(SaedetoxError):
        toxicity_summary(s, prompt_toxicity=[0.1])


def test_bootstrap_ci_deterministic_and_contains_estimate():
    v = np.random.default_rng(1).random(50)
    a = bootstrap_ci(v, seed=3)
    assert a == bootstrap_ci(v, seed=3)
    assert a != bootstrap_ci(v, seed=4)
    assert a[0] < v.mean() < a[1]
    assert bootstrap_ci(v, alpha=0.5, seed=3)[1] - bootstrap_ci(v, alpha=0.5, seed=3)[0] < a[1] - a[0]
    assert bootstrap_ci(np.full(7, 0.25)) == (0.25, 0.25)
    rows = np.array([[2.0, 1.0], [9.0, 3.0], [4.0, 2.0]])  # ratio statistic over resampled prompts
    lo, hi = bootstrap_ci(rows, lambda a: a[:, 0].sum() / a[:, 1].sum(), n_boot=300)
    assert lo <= 15 / 6 <= hi and lo >= 2.0 and hi <= 3.0
    assert all(math.isnan(x) for x in bootstrap_ci([]))
