"""Diversity (DExperts dist-n) on hand-computed values."""

from __future__ import annotations

import pytest

from saedetox.eval.metrics.diversity import distinct_n, diversity


def test_distinct_n_hand_values():
    gens = [["a b a", "a b"], ["x y"]]
    # prompt 1: 5 tokens, {a, b} / {a_b, b_a} / {a_b_a}; prompt 2: 2 tokens, {x, y} / {x_y} / {}
    assert distinct_n(gens, 1) == pytest.approx((2 / 5 + 2 / 2) / 2)
    assert distinct_n(gens, 2) == pytest.approx((2 / 5 + 1 / 2) / 2)
    assert distinct_n(gens, 3) == pytest.approx((1 / 5 + 0 / 2) / 2)
    assert diversity(gens) == pytest.approx({"dist1": 0.7, "dist2": 0.45, "dist3": 0.1})


def test_distinct_n_follows_dexperts_tokenisation():
    assert distinct_n([["a  b"]], 1) == pytest.approx(1.0)  # split(' '): ['a', '', 'b'], 3 tokens, 3 distinct
    assert distinct_n([["a a", ""]], 1) == pytest.approx(2 / 3)  # '' counts as one token
    assert distinct_n([["a_b c", "a b_c"]], 2) == pytest.approx(1 / 4)  # '_'-joined n-grams collide, as in DExperts
    assert distinct_n([["a b"], []], 1) == pytest.approx(1.0)  # prompts without samples are skipped
    assert diversity([])["dist1"] is None
