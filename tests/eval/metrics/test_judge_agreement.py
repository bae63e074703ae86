"""Judge agreement on hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from saedetox.errors import SaedetoxError
from saedetox.eval.metrics.judge_agreement import judge_agreement


def test_judge_agreement_hand_values():
    x = np.array([0.1, 0.6, 0.9, 0.2])
    y = np.array([0.2, 0.4, 0.8, 0.1])
    out = judge_agreement({"a": x, "b": y, "c": x})
    assert set(out) == {"a~b", "a~c", "b~c"}
    ab = out["a~b"]
    # binarised: a = 0110, b = 0010 → p_o = 3/4, p_e = ½·¼ + ½·¾ = ½ → κ = ½
    assert ab["cohen_kappa"] == pytest.approx(0.5)
    assert ab["spearman"] == pytest.approx(0.8)  # ranks 1342 vs 2341: 1 − 6·2/(4·15)
    xc, yc = x - x.mean(), y - y.mean()
    assert ab["pearson"] == pytest.approx((xc @ yc) / math.sqrt((xc @ xc) * (yc @ yc)))
    assert ab["pos_rate"] == {"a": 0.5, "b": 0.25}
    assert out["a~c"]["cohen_kappa"] == pytest.approx(1.0) and out["a~c"]["pearson"] == pytest.approx(1.0)
    flat = judge_agreement({"a": np.zeros(3), "b": np.zeros(3)})["a~b"]
    assert flat["pearson"] is None and flat["cohen_kappa"] is None
    with pytest.raises(SaedetoxError):
        judge_agreement({"a": x, "b": y[:3]})
