"""Choosing k on the select split: toy cases whose optimum is known by construction, an independent refit."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import mannwhitneyu
from sklearn.linear_model import LogisticRegression

from saedetox.discover.kgrid import AUTO_K_GRID, choose_k, k_grid, parse_k
from saedetox.errors import SaedetoxError


def _auroc(y: np.ndarray, s: np.ndarray) -> float:
    """AUROC as the Mann-Whitney U share (ties half): not the code under test's roc_auc_score."""
    return float(mannwhitneyu(s[y == 1], s[y == 0]).statistic / ((y == 1).sum() * (y == 0).sum()))


def _refit(rank_x, rank_y, sel_x, sel_y, k):
    scale = rank_x[:, :k].std(0) + 1e-6
    clf = LogisticRegression(max_iter=2000).fit(rank_x[:, :k] / scale, rank_y)
    return _auroc(sel_y, clf.decision_function(sel_x[:, :k] / scale))


def _world(seed: int, n: int = 200):
    """Latent 0 separates toxic from clean on both splits (a little noise); latents 1–2 carry the same signal on
    the rank split, so the fit weights them, but are reversed noise on the select split; latents 3+ are noise."""
    rng = np.random.default_rng(seed)
    y = np.r_[np.ones(n), np.zeros(n)]

    def split(reversed_: bool) -> np.ndarray:
        x = rng.normal(size=(2 * n, 6))
        x[:, 0] += 2.0 * y
        x[:, 1:3] += (-3.0 if reversed_ else 2.0) * y[:, None]
        return x

    return split(False), y, split(True), y


def test_the_select_optimum_known_by_construction_is_chosen():
    rank_x, rank_y, sel_x, sel_y = _world(0)
    c = choose_k([1, 3, 6], rank_x, rank_y, sel_x, sel_y)
    assert c.k == 1  # the reversed latents 1–2 only hurt on the select split
    assert c.grid == [1, 3, 6] and c.n_latents == {1: 1, 3: 3, 6: 6}
    for k in c.grid:  # every recorded AUROC equals an independent refit and Mann-Whitney AUROC
        assert c.select_auroc[k] == pytest.approx(_refit(rank_x, rank_y, sel_x, sel_y, k), abs=1e-3)
    assert c.select_auroc[1] > c.select_auroc[3] + 0.1
    # the same latents with the select split agreeing with rank: more latents help, the largest k wins
    agree = choose_k([1, 3, 6], rank_x, rank_y, rank_x[::-1], rank_y[::-1])
    assert agree.k == 3 and agree.select_auroc[3] > agree.select_auroc[1]


def test_a_second_informative_latent_makes_k2_the_optimum():
    """Two latents each flag half of the toxic texts: k = 2 separates perfectly on select, k = 1 cannot, and k = 8
    (noise added) can do no better than perfect, so at best it ties and the tie goes to the smaller k."""
    rng = np.random.default_rng(1)
    n = 100

    def split() -> tuple[np.ndarray, np.ndarray]:
        y = np.r_[np.ones(2 * n), np.zeros(2 * n)]
        x = rng.normal(scale=0.1, size=(4 * n, 8))
        x[:n, 0] += 5.0
        x[n : 2 * n, 1] += 5.0
        x[:, 2:] = rng.normal(scale=3.0, size=(4 * n, 6))
        return x, y

    (rx, ry), (sx, sy) = split(), split()
    c = choose_k([1, 2, 8], rx, ry, sx, sy)
    assert c.select_auroc[2] == pytest.approx(1.0) and c.select_auroc[1] < 0.8 and c.select_auroc[8] <= 1.0
    assert c.k == 2


def test_ties_go_to_the_smaller_k_and_short_selections_score_what_there_is():
    rank_x, rank_y, sel_x, sel_y = _world(2)
    short = choose_k([1, 2, 4, 8], rank_x[:, :2], rank_y, sel_x[:, :2], sel_y)  # only two latents passed
    assert short.n_latents == {1: 1, 2: 2, 4: 2, 8: 2}
    assert short.select_auroc[2] == short.select_auroc[4] == short.select_auroc[8]
    assert short.k in (1, 2)  # 4 and 8 hold the same two latents as 2: the tie goes to 2
    rec = short.record()
    assert rec["chosen"] == short.k and rec["grid"] == [1, 2, 4, 8] and set(rec["select_auroc"]) == {"1", "2", "4", "8"}
    with pytest.raises(SaedetoxError, match="No latent"):
        choose_k([1, 2], rank_x[:, :0], rank_y, sel_x[:, :0], sel_y)


def test_parse_k():
    assert parse_k(20) == 20 and parse_k("20") == 20 and parse_k([7]) == 7
    assert parse_k("auto") == AUTO_K_GRID and k_grid("auto") == (5, 10, 20, 40)
    assert parse_k("20, 5,10") == (5, 10, 20) and parse_k([40, 5, 5]) == (5, 40) and k_grid(3) == (3,)
    for bad in (0, -1, True, 2.5, "x", "5,a", [], [0, 5], "0"):
        with pytest.raises(SaedetoxError, match="k"):
            parse_k(bad)
