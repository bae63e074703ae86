"""Agreement between judges on the same continuations: correlations and Cohen's κ per judge pair."""

from __future__ import annotations

import math
import warnings
from itertools import combinations
from typing import Any

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import cohen_kappa_score

from saedetox.errors import SaedetoxError
from saedetox.eval.metrics.bootstrap import mean_or_nan, none_if_nan


def judge_agreement(scores_by_judge: dict[str, np.ndarray], threshold: float = 0.5) -> dict[str, dict[str, Any]]:
    """For each judge pair ``"a~b"``: Pearson, Spearman, Cohen's κ (binarised at ``threshold``), positive rates."""
    flat = {k: np.asarray(v, dtype=np.float64).ravel() for k, v in scores_by_judge.items()}
    out: dict[str, dict[str, Any]] = {}
    for a, b in combinations(flat, 2):
        x, y = flat[a], flat[b]
        if x.shape != y.shape:
            raise SaedetoxError(f"Judges {a} and {b} scored different numbers of texts ({x.size} vs {y.size}).")
        ok = np.isfinite(x) & np.isfinite(y)
        x, y = x[ok], y[ok]
        bx, by = x >= threshold, y >= threshold
        varied = x.size > 1 and np.ptp(x) > 0 and np.ptp(y) > 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # κ is 0/0 when both judges give one label to everything
            kappa = float(cohen_kappa_score(bx, by)) if x.size else math.nan
        out[f"{a}~{b}"] = {
            "pearson": none_if_nan(float(pearsonr(x, y)[0])) if varied else None,
            "spearman": none_if_nan(float(spearmanr(x, y)[0])) if varied else None,
            "cohen_kappa": none_if_nan(kappa),
            "pos_rate": {a: none_if_nan(mean_or_nan(bx)), b: none_if_nan(mean_or_nan(by))},
            "n": int(x.size),
        }
    return out
