"""Strength curves: runs grouped by ``config.curve`` in ``config.level`` order, from the ``none`` run (level 0).

A run's curve is ``config.curve`` when present (the sweep planner sets it), else derived from the
config so that older metrics still form curves: ``sae``/``meandiff`` runs → ``METHOD-MODE``,
``surgery`` → ``surgery``, ``none``/``prompt``/``aura`` → no curve (a *point*: no strength). Its level
is ``config.level``, else its α, else its tier's fraction of the median residual norm, else its
strength.

All the curve statistics rest on one table of per-prompt values (:class:`PromptMatrix`, from the
runs' ``per_prompt`` blocks, aligned on prompt uid) and on resampling prompts: every bootstrap
resample recomputes every run's toxicity probability and PPL ratio to the ``none`` run, and the
curves are re-interpolated on it (:func:`first_crossing`). The PPL ratio is
``exp(mean over prompts of log_ppl(run) − log_ppl(none))``, the ratio of geometric-mean
conditional perplexities over the prompts both runs have a value for.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from saedetox.errors import SaedetoxError
from saedetox.eval.metrics.bootstrap import bca_interval, bca_pvalue, resample_indices
from saedetox.eval.metrics.paired import PerPrompt, align
from saedetox.eval.result import RunResult
from saedetox.methods.registry import find_method
from saedetox.report.format import num
from saedetox.steering.spec import TIER_FACTORS

DEFAULT_RATIOS: tuple[float, ...] = (1.05, 1.10, 1.25)
DEFAULT_PUSHES: tuple[float, ...] = (0.1, 0.2)


@dataclass
class ComparisonConfig:
    """The pre-registered comparison of a sweep (its ``comparison:`` section), fixed before the runs.

    ``ppl_ratios``: PPL ratios to ``none`` at which curves are compared; ``judge``: the judge whose
    toxicity probability is compared (default: the report's first judge); ``primary``: the SAE curve
    the answer is about (default: the first SAE curve in run order); ``pushes``: effective pushes at
    which steering modes are compared; ``n_boot``/``seed``: the paired bootstrap over prompts.
    """

    ppl_ratios: list[float] = field(default_factory=lambda: list(DEFAULT_RATIOS))
    judge: str | None = None
    primary: str | None = None
    pushes: list[float] = field(default_factory=lambda: list(DEFAULT_PUSHES))
    n_boot: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        for name, lo in (("ppl_ratios", 1.0), ("pushes", 0.0)):
            vals = getattr(self, name)
            if not isinstance(vals, (list, tuple)) or not vals:
                raise SaedetoxError(f"comparison.{name} must be a non-empty list of numbers.")
            if any(num(v) is None or float(v) < lo for v in vals):
                raise SaedetoxError(f"comparison.{name} must hold numbers ≥ {lo:g}, got {list(vals)}.")
            setattr(self, name, sorted(float(v) for v in vals))
        if not isinstance(self.n_boot, int) or isinstance(self.n_boot, bool) or self.n_boot < 100:
            raise SaedetoxError(f"comparison.n_boot must be an integer ≥ 100, got {self.n_boot!r}.")
        for name in ("judge", "primary"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise SaedetoxError(f"comparison.{name} must be a name.")

    @classmethod
    def from_mapping(cls, raw: ComparisonConfig | Mapping[str, Any] | None) -> ComparisonConfig:
        """From a config mapping (unknown keys refused), an instance, or ``None`` (the defaults)."""
        if raw is None or isinstance(raw, ComparisonConfig):
            return raw or cls()
        if not isinstance(raw, Mapping):
            raise SaedetoxError("The comparison section must be a mapping.")
        unknown = set(raw) - set(cls.__dataclass_fields__)
        if unknown:
            raise SaedetoxError(f"Unknown key(s) in comparison: {', '.join(sorted(unknown))}.")
        return cls(**dict(raw))


def curve_of(m: Mapping[str, Any]) -> str | None:
    """The run's curve name, or ``None`` for a point method (see the module docstring)."""
    cfg = RunResult.of(m).config
    if "curve" in cfg:
        return None if cfg["curve"] is None else str(cfg["curve"])
    method = cfg.get("method")
    info = find_method(method)
    if method is None or (info is not None and not info.curve):  # a point method (methods.registry)
        return None
    if info is not None and info.modes:
        return f"{method}-{cfg.get('mode') or info.modes[0]}"
    return str(method)


def level_of(m: Mapping[str, Any]) -> float | None:
    """The run's strength along its curve: ``config.level``, else α, else the tier's fraction, else strength."""
    r = RunResult.of(m)
    for key in ("level", "alpha"):
        if (v := num(r.config_value(key))) is not None:
            return v
    tier = r.config_value("tier")
    if isinstance(tier, str) and tier in TIER_FACTORS:
        return TIER_FACTORS[tier]
    return num(tier) if num(tier) is not None else num(r.config_value("strength"))


def family_of(m: Mapping[str, Any]) -> str:
    """``sae``, ``baseline`` or ``other`` (the unsteered run and methods nobody registered)."""
    info = find_method(RunResult.of(m).config_value("method"))
    return info.family if info is not None and info.family in ("sae", "baseline") else "other"


@dataclass
class PromptMatrix:
    """Per-prompt values of the runs that share the origin's prompts and k, aligned on prompt uid.

    ``tox[r, i]`` = 1 when one of run r's samples on prompt i is toxic (NaN: no score), ``logd[r, i]`` =
    its log PPL minus the origin's (NaN when either is missing). Runs that cannot be aligned are in
    ``left_out`` with the reason.
    """

    origin: str
    judge: str
    names: list[str]
    tox: np.ndarray
    logd: np.ndarray
    k: int | None
    left_out: dict[str, str] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.tox.shape[1])

    def index(self, name: str) -> int:
        return self.names.index(name)


def build_matrix(runs: Mapping[str, Mapping[str, Any]], judge: str, origin: str = "none") -> PromptMatrix:
    """The :class:`PromptMatrix` of ``runs`` around ``origin``; raises when the origin has no per-prompt data."""
    if origin not in runs:
        raise SaedetoxError(f"No {origin!r} run to anchor the curves (PPL ratios are relative to it).")
    ref = PerPrompt.from_metrics(runs[origin], origin)
    if judge not in ref.max_tox:
        raise SaedetoxError(f"Run {origin!r} has no per-prompt scores of judge {judge!r}.")
    names, tox, logd, left = [], [], [], {}
    for name, m in runs.items():
        try:
            pp = ref if name == origin else align(ref, PerPrompt.from_metrics(m, name))
            t = pp.values("tox_prob", judge)
        except SaedetoxError as err:
            left[name] = str(err)
            continue
        names.append(name)
        tox.append(t)
        logd.append(pp.log_ppl - ref.log_ppl)
    return PromptMatrix(origin, judge, names, np.array(tox), np.array(logd), ref.k, left)


def resampled(mat: PromptMatrix, n_boot: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(tox, ratio)``, each ``[1 + n_boot + n, n_runs]``: row 0 on all prompts, one row per resample, then
    one row per prompt left out (the jackknife rows :func:`summary` takes the BCa acceleration from).

    A resample weights each prompt by how often it was drawn (the draws of
    :func:`~saedetox.eval.metrics.bootstrap.resample_indices`); NaN entries take no part in their run's mean.
    Every quantity derived row by row (interpolations, the best baseline, differences) keeps this layout.
    """
    n = mat.n
    idx = resample_indices(n, n_boot, seed)
    counts = np.ones((1 + n_boot + n, n))
    counts[1 : 1 + n_boot] = np.bincount((idx + n * np.arange(n_boot)[:, None]).ravel(), minlength=n_boot * n).reshape(
        n_boot, n
    )
    counts[1 + n_boot :] -= np.eye(n)
    with np.errstate(invalid="ignore", divide="ignore"):
        tox = (counts @ np.nan_to_num(mat.tox).T) / (counts @ (~np.isnan(mat.tox)).T)
        ratio = np.exp((counts @ np.nan_to_num(mat.logd).T) / (counts @ (~np.isnan(mat.logd)).T))
    return tox, ratio


def first_crossing(x: np.ndarray, y: np.ndarray, target: float) -> np.ndarray:
    """``y`` interpolated at ``x = target`` on the first segment (in column order) that reaches it.

    ``x``, ``y``: ``[rows, points]``, column 0 the origin. Per row, the first point ``j`` with
    ``x[j] ≥ target`` is found; the value is the linear interpolation between points ``j − 1`` and
    ``j`` (``y[0]`` when the origin already reaches it). A row that never reaches ``target`` is NaN:
    a curve is never extrapolated.
    """
    x, y = np.atleast_2d(x).astype(np.float64), np.atleast_2d(y).astype(np.float64)
    reach = x >= target
    out = np.full(x.shape[0], np.nan)
    rows = np.flatnonzero(reach.any(axis=1))
    j = reach[rows].argmax(axis=1)
    at0 = j == 0
    out[rows[at0]] = y[rows[at0], 0]
    r, j = rows[~at0], j[~at0]
    x0, x1, y0, y1 = x[r, j - 1], x[r, j], y[r, j - 1], y[r, j]
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(x1 > x0, (target - x0) / (x1 - x0), 1.0)
    out[r] = y0 + t * (y1 - y0)
    return out


def summary(dist: np.ndarray, n_boot: int, alpha: float = 0.05) -> dict[str, Any]:
    """Estimate (row 0), BCa CI over the defined resamples, their share, and the BCa p-value.

    ``dist`` has the rows of :func:`resampled`: the estimate, ``n_boot`` resamples, then the jackknife
    rows. The CI is :func:`~saedetox.eval.metrics.bootstrap.bca_interval`; p (two-sided, "the value is 0")
    is :func:`~saedetox.eval.metrics.bootstrap.bca_pvalue`, the interval's test inversion, so the
    ``1 − alpha`` CI excludes 0 exactly when ``p < alpha``.
    """
    dist = np.asarray(dist, dtype=np.float64)
    est, boot, jack = float(dist[0]), dist[1 : 1 + n_boot], dist[1 + n_boot :]
    ok = boot[np.isfinite(boot)]
    lo, hi = bca_interval(est, ok, jack, alpha)
    p = bca_pvalue(est, ok, jack)
    return {
        "est": est if math.isfinite(est) else None,
        "ci": [lo if math.isfinite(lo) else None, hi if math.isfinite(hi) else None],
        "defined": float(ok.size / boot.size) if boot.size else 0.0,
        "p": p if math.isfinite(p) else None,
    }


@dataclass
class Curve:
    """A curve's runs in level order (the origin is not listed) and its family (``sae`` / ``baseline``)."""

    name: str
    family: str
    runs: list[str]
    levels: list[float]


def group_curves(
    runs: Mapping[str, Mapping[str, Any]], names: list[str], origin: str
) -> tuple[list[Curve], list[str], dict[str, str]]:
    """``(curves in run order, point runs, left out)`` among ``names``; runs without a level are left out."""
    curves: dict[str, Curve] = {}
    points, left = [], {}
    for name in names:
        if name == origin:
            continue
        m = runs[name]
        c = curve_of(m)
        if c is None:
            points.append(name)
            continue
        level = level_of(m)
        if level is None:
            left[name] = f"run {name!r} has no level along curve {c!r}"
            continue
        cur = curves.setdefault(c, Curve(c, family_of(m), [], []))
        cur.runs.append(name)
        cur.levels.append(level)
    for cur in curves.values():
        order = sorted(range(len(cur.runs)), key=lambda i: cur.levels[i])
        cur.runs = [cur.runs[i] for i in order]
        cur.levels = [cur.levels[i] for i in order]
    return list(curves.values()), points, left
