"""Rectification's cap rule against hand-computed toy distributions."""

from __future__ import annotations

import pytest
import torch

from saedetox.errors import SaedetoxError
from saedetox.methods.dead_end import RECTIFICATION_TIERS, RectifyStats, caps, epsilon_of, rectify


def _logits(*probs: float) -> torch.Tensor:
    return torch.tensor([probs]).log()


def test_a_certain_dead_end_gets_probability_zero_and_the_rest_renormalises():
    out = rectify(_logits(0.5, 0.3, 0.2), torch.tensor([[-1.0, 0.0, 0.0]]), eps=0.0).softmax(-1)
    assert out[0].tolist() == pytest.approx([0.0, 0.6, 0.4], abs=1e-6)  # 0.3 / 0.5, 0.2 / 0.5


def test_values_zero_at_epsilon_zero_leave_the_scores_bit_for_bit():
    scores = torch.randn(3, 7)
    out = rectify(scores, torch.zeros(3, 7), eps=0.0)
    assert torch.equal(out, scores)


def test_cap_then_renormalise_three_rounds_by_hand():
    # p = (0.7, 0.2, 0.1), Q = 0, ε = 0.4: every cap is 0.6; only the first token exceeds it
    out = rectify(_logits(0.7, 0.2, 0.1), torch.zeros(1, 3), eps=0.4).softmax(-1)[0].tolist()
    p = [0.7, 0.2, 0.1]
    for _ in range(3):  # the official loop: cap, renormalise, three times
        p = [min(x, 0.6) for x in p]
        p = [x / sum(p) for x in p]
    assert out == pytest.approx(p, abs=1e-6)
    assert out == pytest.approx([0.6 / 0.957143, 0.238095 / 0.957143, 0.119048 / 0.957143], abs=1e-5)


def test_partial_dead_end_caps_at_one_plus_q():
    # Q = −0.8 caps the first token at 0.2; after one renormalisation it is 0.2 / 0.7 > 0.2, so each round caps it again
    out = rectify(_logits(0.5, 0.5), torch.tensor([[-0.8, 0.0]]), eps=0.0).softmax(-1)[0].tolist()
    p = [0.5, 0.5]
    for _ in range(3):
        p = [min(p[0], 0.2), min(p[1], 1.0)]
        p = [x / sum(p) for x in p]
    assert out == pytest.approx(p, abs=1e-6)
    assert out[0] == pytest.approx(0.2038217, abs=1e-6)  # three rounds leave it just above its cap, as upstream


def test_rows_are_independent_and_untouched_rows_keep_their_scores():
    scores = torch.stack([_logits(0.5, 0.3, 0.2)[0], _logits(0.2, 0.3, 0.5)[0]])
    q = torch.tensor([[-1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    stats = RectifyStats()
    out = rectify(scores, q, eps=0.0, stats=stats)
    assert torch.equal(out[1], scores[1])
    assert out[0].softmax(-1).tolist() == pytest.approx([0.0, 0.6, 0.4], abs=1e-6)
    assert (stats.rows, stats.changed, stats.no_safe_token) == (2, 1, 0)
    assert stats.removed_mass == pytest.approx(0.5)


def test_a_row_with_no_safe_token_keeps_its_distribution_and_is_counted():
    scores = _logits(0.6, 0.4)
    stats = RectifyStats()
    out = rectify(scores, torch.tensor([[-1.0, -1.0]]), eps=0.0, stats=stats)
    assert torch.equal(out, scores)
    assert stats.no_safe_token == 1 and stats.changed == 0


def test_q_is_clipped_and_caps_are_in_unit_interval():
    c = caps(torch.tensor([[-3.0, 2.0, -0.25]]), eps=0.1)
    assert c[0].tolist() == pytest.approx([0.0, 0.9, 0.65])


def test_tiers_and_strengths():
    assert epsilon_of("low", None) == (0.0, "low")
    assert epsilon_of("HIGH", None) == (RECTIFICATION_TIERS["high"], "high")
    assert epsilon_of(None, 0.25) == (0.25, None)
    assert RECTIFICATION_TIERS["low"] < RECTIFICATION_TIERS["medium"] < RECTIFICATION_TIERS["high"]
    for bad in (("0.5", None), (None, 1.0), (None, -0.1), (0.3, None)):
        with pytest.raises(SaedetoxError):
            epsilon_of(*bad)
