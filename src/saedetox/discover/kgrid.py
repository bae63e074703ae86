"""How many latents discovery selects: one ``k``, or the best of a grid, chosen on the select split.

``k`` is a whole number, a list of them (``[5, 10, 20]``; on the command line ``5,10,20``) or
``auto`` (:data:`AUTO_K_GRID`). With a grid, discovery selects ``max(grid)`` latents in its usual
order, then for each ``k`` in the grid fits the set detector on the first ``k`` of them on the rank
split (:func:`saedetox.discover.detector.fit_detector`, per-text maxima) and scores it on the select
split; the ``k`` with the highest select-split AUROC is kept (ties: the smaller ``k``). The test
split is not read. When fewer latents pass the filters than a grid value asks for, that value
scores the latents there are (and ties with the smaller values that already hold them all).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from saedetox.discover.detector import detector_logit, fit_detector
from saedetox.errors import SaedetoxError

AUTO_K_GRID: tuple[int, ...] = (5, 10, 20, 40)

#: how features.json names the rule
RULE = "highest select-split AUROC of the set detector fitted on the rank split; ties: smaller k"


def _whole(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise SaedetoxError(f"k must be a whole number ≥ 1, a list of them or 'auto', got {v!r}.")
    return v


def parse_k(value: Any) -> int | tuple[int, ...]:
    """``k`` as given (a number, a list, ``"auto"``, or the text ``"20"`` / ``"5,10,20"``): a number or a grid."""
    if isinstance(value, str):
        text = value.strip()
        if text == "auto":
            return AUTO_K_GRID
        try:
            parts = [int(p) for p in text.split(",") if p.strip()]
        except ValueError:
            raise SaedetoxError(
                f"k must be a whole number ≥ 1, a comma-separated list of them or 'auto', got {value!r}."
            ) from None
        value = parts[0] if len(parts) == 1 else parts
    if isinstance(value, (list, tuple)):
        if not value:
            raise SaedetoxError("k: the grid is empty.")
        grid = tuple(sorted({_whole(v) for v in value}))
        return grid[0] if len(grid) == 1 else grid
    return _whole(value)


def k_grid(k: int | Sequence[int] | str) -> tuple[int, ...]:
    """The grid ``k`` stands for, ascending (one value for a number)."""
    parsed = parse_k(k)
    return parsed if isinstance(parsed, tuple) else (parsed,)


@dataclass
class KChoice:
    """The chosen ``k``, and per grid value the select-split AUROC and how many latents it held."""

    k: int
    grid: list[int]
    select_auroc: dict[int, float]
    n_latents: dict[int, int]

    def record(self) -> dict[str, Any]:
        """features.json's ``k_choice``."""
        return {
            "chosen": self.k,
            "grid": self.grid,
            "select_auroc": {str(k): self.select_auroc[k] for k in self.grid},
            "n_latents": {str(k): self.n_latents[k] for k in self.grid},
            "rule": RULE,
        }


def choose_k(
    grid: Sequence[int], rank_x: np.ndarray, rank_y: np.ndarray, select_x: np.ndarray, select_y: np.ndarray
) -> KChoice:
    """The best ``k`` of ``grid`` (module docstring).

    ``rank_x`` / ``select_x`` ``[texts, latents]``: the per-text maxima of the selected latents, in
    selection order, on the rank and select splits; ``*_y``: 1 toxic, 0 clean.
    """
    grid = sorted(set(int(k) for k in grid))
    n = rank_x.shape[1]
    if n == 0:
        raise SaedetoxError("No latent passed the filters, so no k can be chosen.")
    aucs: dict[int, float] = {}
    sizes: dict[int, int] = {}
    best = None
    for k in grid:
        m = min(k, n)
        det = fit_detector(list(range(m)), rank_x[:, :m], rank_y)
        score = select_x[:, :m].sum(1) if det is None else detector_logit(det, select_x[:, :m])
        aucs[k], sizes[k] = float(roc_auc_score(select_y, score)), m
        if best is None or aucs[k] > aucs[best]:
            best = k
    assert best is not None
    return KChoice(best, grid, aucs, sizes)
