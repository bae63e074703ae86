"""Paired comparisons of two runs on the same prompts: per-prompt differences, resampled over prompts.

Every run writes a ``per_prompt`` block into its ``metrics.json`` (:func:`per_prompt_block`):
per prompt its uid, per judge the maximum toxicity over its k samples and how many samples are
toxic, and the mean log conditional perplexity of its continuations. Two runs of one sweep score
the same prompts with the same per-batch random streams, so their per-prompt values are paired and
a difference is estimated from the per-prompt differences, which cancels the prompt-to-prompt
spread that dominates an unpaired comparison. Definitions (prompts where either run has no value
are left out of that metric):

- toxicity probability: mean over prompts of ``1[n_toxic ≥ 1]`` (a prompt is toxic when one of its k
  samples scores ≥ the run's threshold), difference A − B;
- EMT: mean over prompts of the maximum toxicity, difference A − B;
- log PPL: mean over prompts of ``log_ppl`` (log of the geometric mean PPL), difference A − B;
  ``exp`` of it is the PPL ratio A / B.

CI: BCa bootstrap over prompts with the pairs kept together (``scipy.stats.bootstrap``,
``paired=True``, ``method="BCa"``, ``rng = default_rng(seed)``). p-value: two-sided paired sign-flip permutation test
of the mean difference (:func:`sign_flip_pvalue`: under the null each prompt's two values are
exchangeable; scipy's ``permutation_test`` convention); exact over all 2ⁿ sign patterns when
2ⁿ ≤ ``n_perm``, else ``n_perm`` random patterns; or (``p_kind="bootstrap"``) the BCa interval's test inversion.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats as sps

from saedetox.data.readers import Prompt
from saedetox.errors import SaedetoxError
from saedetox.eval.metrics.bootstrap import bca_interval, bca_pvalue
from saedetox.eval.metrics.pairable import check_same_protocol

METRICS: tuple[str, ...] = ("tox_prob", "emt", "log_ppl")


def _r5(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 5)


def prompt_uids(prompts: Sequence[Prompt]) -> list[str]:
    """A stable id per prompt: its RTP id, else a hash of its text; repeats get ``#2``, ``#3``, …"""
    out, seen = [], {}
    for p in prompts:
        uid = p.uid or "text:" + hashlib.sha256(p.text.encode("utf-8")).hexdigest()[:16]
        seen[uid] = seen.get(uid, 0) + 1
        out.append(uid if seen[uid] == 1 else f"{uid}#{seen[uid]}")
    return out


def per_prompt_block(
    prompts: Sequence[Prompt],
    scores: Mapping[str, np.ndarray],
    threshold: float,
    log_ppl: Sequence[float | None],
) -> dict[str, Any]:
    """The ``per_prompt`` block of ``metrics.json`` from the judges' ``[n_prompts, k]`` scores and per-prompt log PPL.

    ``max_tox`` is ``None`` for a prompt without any (non-NaN) score; ``n_toxic`` counts samples
    scoring ≥ ``threshold``. Floats are rounded to 5 decimals.
    """
    if len(log_ppl) != len(prompts):
        raise SaedetoxError(f"{len(log_ppl)} perplexities for {len(prompts)} prompts.")
    max_tox: dict[str, list[float | None]] = {}
    n_toxic: dict[str, list[int]] = {}
    for judge, s in scores.items():
        s = np.asarray(s, dtype=np.float64).reshape(len(prompts), -1)
        ok = ~np.isnan(s)
        max_tox[judge] = [_r5(float(r[o].max())) if o.any() else None for r, o in zip(s, ok, strict=True)]
        n_toxic[judge] = [int(v) for v in (np.where(ok, s, -np.inf) >= threshold).sum(axis=1)]
    return {
        "uid": prompt_uids(prompts),
        "max_tox": max_tox,
        "n_toxic": n_toxic,
        "log_ppl": [_r5(v) for v in log_ppl],
    }


def _floats(xs: Any, n: int, what: str) -> np.ndarray:
    if not isinstance(xs, list) or len(xs) != n:
        raise SaedetoxError(f"{what} does not hold one value per prompt.")
    return np.array([np.nan if v is None else float(v) for v in xs], dtype=np.float64)


def samples_per_prompt(m: Mapping[str, Any]) -> int | None:
    """k of a run: ``samples_per_prompt``, else ``config.sampling.n_samples``."""
    k = m.get("samples_per_prompt")
    if k is None:
        k = ((m.get("config") or {}).get("sampling") or {}).get("n_samples")
    return int(k) if isinstance(k, (int, float)) and not isinstance(k, bool) else None


@dataclass
class PerPrompt:
    """A run's per-prompt vectors (NaN = no value): ``toxic[j]`` is 1.0 when a sample scored toxic."""

    name: str
    uid: list[str]
    k: int | None
    max_tox: dict[str, np.ndarray] = field(default_factory=dict)
    toxic: dict[str, np.ndarray] = field(default_factory=dict)
    log_ppl: np.ndarray = field(default_factory=lambda: np.empty(0))

    @classmethod
    def from_metrics(cls, m: Mapping[str, Any], name: str) -> PerPrompt:
        """Read the ``per_prompt`` block of run ``name``; one clear line when it is missing or malformed."""
        block = m.get("per_prompt") if isinstance(m, Mapping) else None
        if not isinstance(block, dict) or not isinstance(block.get("uid"), list):
            raise SaedetoxError(
                f"Run {name!r} has no per-prompt data (its metrics.json predates paired statistics); "
                "evaluate it again to compare it."
            )
        uid = [str(u) for u in block["uid"]]
        if len(set(uid)) != len(uid):
            raise SaedetoxError(f"Run {name!r} lists a prompt uid twice.")
        n = len(uid)
        out = cls(name, uid, samples_per_prompt(m), log_ppl=_floats(block.get("log_ppl"), n, f"{name}: log_ppl"))
        counts = block.get("n_toxic") or {}
        for judge, xs in (block.get("max_tox") or {}).items():
            mx = _floats(xs, n, f"{name}: max_tox[{judge}]")
            nt = _floats(counts.get(judge), n, f"{name}: n_toxic[{judge}]")
            out.max_tox[judge] = mx
            out.toxic[judge] = np.where(np.isnan(mx), np.nan, (nt >= 1).astype(np.float64))
        return out

    def values(self, metric: str, judge: str | None) -> np.ndarray:
        """Per-prompt values of ``metric`` (one of :data:`METRICS`)."""
        if metric == "log_ppl":
            return self.log_ppl
        if judge not in self.max_tox:
            raise SaedetoxError(f"Run {self.name!r} has no per-prompt scores of judge {judge!r}.")
        return self.toxic[judge] if metric == "tox_prob" else self.max_tox[judge]

    def reorder(self, order: Sequence[int]) -> PerPrompt:
        idx = np.asarray(order, dtype=int)
        return PerPrompt(
            self.name,
            [self.uid[i] for i in idx],
            self.k,
            {j: v[idx] for j, v in self.max_tox.items()},
            {j: v[idx] for j, v in self.toxic.items()},
            self.log_ppl[idx],
        )


def align(ref: PerPrompt, other: PerPrompt) -> PerPrompt:
    """``other`` in ``ref``'s prompt order; refused (one line) when the prompt sets or k differ."""
    if ref.k != other.k:
        raise SaedetoxError(
            f"Runs {ref.name!r} and {other.name!r} differ in samples per prompt (k = {ref.k} vs {other.k}); "
            "paired statistics need the same protocol."
        )
    if set(ref.uid) != set(other.uid):
        only = len(set(ref.uid) - set(other.uid)) + len(set(other.uid) - set(ref.uid))
        raise SaedetoxError(
            f"Runs {ref.name!r} and {other.name!r} scored different prompts ({only} of "
            f"{len(set(ref.uid) | set(other.uid))} in one run only); paired statistics need the same prompt set."
        )
    where = {u: i for i, u in enumerate(other.uid)}
    return other.reorder([where[u] for u in ref.uid])


@dataclass
class Difference:
    """A paired difference A − B over ``n`` prompts: estimate, BCa CI and two-sided sign-flip p-value."""

    metric: str
    a: float
    b: float
    diff: float
    ci: tuple[float, float]
    p: float
    n: int

    def as_dict(self) -> dict[str, Any]:
        nn = lambda x: None if not math.isfinite(x) else float(x)  # noqa: E731
        return {
            "metric": self.metric,
            "a": nn(self.a),
            "b": nn(self.b),
            "diff": nn(self.diff),
            "ci": [nn(self.ci[0]), nn(self.ci[1])],
            "p": nn(self.p),
            "n": self.n,
        }


def _mean_diff(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x - y, axis=axis)


def sign_flip_pvalue(d: np.ndarray, n_perm: int = 10_000, seed: int = 0) -> float:
    """Two-sided p-value of the paired sign-flip permutation test of ``mean(d) = 0``.

    The statistic ``mean(s · d)`` over sign patterns ``s``: all 2ⁿ when 2ⁿ ≤ ``n_perm`` (exact), else
    ``n_perm`` random ones. ``p = min(1, 2 · min(P(T ≤ t), P(T ≥ t)))`` with the +1 correction for random
    patterns: the convention (and result) of ``scipy.stats.permutation_test(..., permutation_type="samples")``
    on the pairs, computed here as one matrix product instead of scipy's per-pair permutations.
    """
    d = np.asarray(d, dtype=np.float64)
    n = d.size
    if n == 0:
        return math.nan
    obs = float(d.mean())
    tol = 1e-9 * float(np.abs(d).mean())  # float noise between equal sums is a tie
    if 2**n <= n_perm:
        flips, adj = (np.arange(2**n)[:, None] >> np.arange(n)) & 1, 0
    else:  # one random bit per prompt and pattern
        raw = np.random.default_rng(seed).bytes(n_perm * ((n + 7) // 8))
        flips = np.unpackbits(np.frombuffer(raw, dtype=np.uint8).reshape(n_perm, -1), axis=1, count=n)
        adj = 1
    stats = (d.sum() - 2.0 * (flips @ d)) / n  # mean of the sign-flipped differences
    less = (int((stats <= obs + tol).sum()) + adj) / (stats.size + adj)
    greater = (int((stats >= obs - tol).sum()) + adj) / (stats.size + adj)
    return float(min(1.0, 2 * min(less, greater)))


P_KINDS = ("sign-flip", "bootstrap")


def paired_difference(
    x: np.ndarray,
    y: np.ndarray,
    *,
    n_boot: int = 2000,
    seed: int = 0,
    n_perm: int = 10_000,
    alpha: float = 0.05,
    p_kind: str = "sign-flip",
) -> tuple[float, tuple[float, float], float, int]:
    """``(mean(x − y), BCa CI, p, n)`` over the pairs where both values are defined.

    ``p_kind="sign-flip"``: p is the sign-flip test's (:func:`sign_flip_pvalue`), a different test from
    the interval's, so the two may disagree near the 5% line. ``p_kind="bootstrap"``: the interval is
    :func:`~saedetox.eval.metrics.bootstrap.bca_interval` on the same resamples and p its test inversion
    (:func:`~saedetox.eval.metrics.bootstrap.bca_pvalue`): the CI excludes 0 exactly when ``p < alpha``.
    A degenerate difference (every pair differs by the same amount) has the zero-width interval.
    """
    if p_kind not in P_KINDS:
        raise ValueError(f"p_kind must be one of {P_KINDS}, got {p_kind!r}.")
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    ok = ~(np.isnan(x) | np.isnan(y))
    x, y = x[ok], y[ok]
    n = int(x.size)
    if n == 0:
        return math.nan, (math.nan, math.nan), math.nan, 0
    d = float(np.mean(x - y))
    if n == 1:
        return d, (math.nan, math.nan), math.nan, 1
    with warnings.catch_warnings():  # scipy warns on a degenerate (constant) distribution
        warnings.simplefilter("ignore")
        boot = sps.bootstrap(
            (x, y),
            _mean_diff,
            paired=True,
            vectorized=True,
            n_resamples=n_boot,
            method="BCa",
            confidence_level=1 - alpha,
            rng=np.random.default_rng(seed),
        )
    ci = (float(boot.confidence_interval.low), float(boot.confidence_interval.high))
    diff = x - y
    jack = (diff.sum() - diff) / (n - 1)  # the leave-one-out means of the differences
    if p_kind == "bootstrap":
        dist = boot.bootstrap_distribution
        return d, bca_interval(d, dist, jack, alpha), bca_pvalue(d, dist, jack), n
    if not (math.isfinite(ci[0]) and math.isfinite(ci[1])):  # scipy's BCa is undefined on a degenerate distribution
        ci = bca_interval(d, boot.bootstrap_distribution, jack, alpha)
    return d, ci, sign_flip_pvalue(diff, n_perm, seed), n


def ppl_ratio(log_a: np.ndarray, log_b: np.ndarray) -> float:
    """The paired PPL ratio A / B: ``exp`` of the mean over prompts of ``log_ppl(A) − log_ppl(B)``.

    The geometric mean of the per-prompt ratios of geometric-mean conditional perplexities, over the
    prompts both runs have a value for (NaN when none). Every paired PPL ratio the report shows is
    this one: the paired differences (:func:`compare_runs`), the tables' PPL column and Pareto marks,
    and the curves at matched fluency (whose bootstrap resamples weight the same terms by their draws).
    """
    d = np.asarray(log_a, dtype=np.float64) - np.asarray(log_b, dtype=np.float64)
    d = d[~np.isnan(d)]
    return float(np.exp(np.mean(d))) if d.size else math.nan


def compare_runs(
    a: Mapping[str, Any],
    b: Mapping[str, Any],
    *,
    judge: str | None = None,
    names: tuple[str, str] = ("A", "B"),
    n_boot: int = 2000,
    seed: int = 0,
    n_perm: int = 10_000,
    p_kind: str = "sign-flip",
) -> dict[str, Any]:
    """Paired differences A − B of toxicity probability, EMT (of ``judge``) and mean log PPL.

    ``p_kind``: which p each difference carries (:func:`paired_difference`); recorded as ``p_kind``.

    ``a`` and ``b`` are run metrics with ``per_prompt`` blocks; ``judge`` defaults to the first
    judge both runs have. Returns ``{"a", "b", "judge", "k", "n_prompts", "differences": [...]}``
    with one :meth:`Difference.as_dict` per metric, and ``ppl_ratio``: :func:`ppl_ratio` (= ``exp`` of the
    log-PPL difference) and ``exp`` of the log-PPL difference's CI.
    """
    check_same_protocol(a, b, names)
    pa = PerPrompt.from_metrics(a, names[0])
    pb = align(pa, PerPrompt.from_metrics(b, names[1]))
    common = [j for j in pa.max_tox if j in pb.max_tox]
    if judge is None:
        if not common:
            raise SaedetoxError(f"Runs {names[0]!r} and {names[1]!r} share no judge.")
        judge = common[0]
    elif judge not in common:
        raise SaedetoxError(f"Judge {judge!r} did not score both runs; pick one of: {', '.join(common) or 'none'}.")
    diffs = []
    for metric in METRICS:
        x, y = pa.values(metric, judge), pb.values(metric, judge)
        d, ci, p, n = paired_difference(x, y, n_boot=n_boot, seed=seed, n_perm=n_perm, p_kind=p_kind)
        ok = ~(np.isnan(x) | np.isnan(y))
        mean_a = float(x[ok].mean()) if n else math.nan
        mean_b = float(y[ok].mean()) if n else math.nan
        diffs.append(Difference(metric, mean_a, mean_b, d, ci, p, n).as_dict())
    lp = diffs[-1]
    ex = lambda x: None if x is None else math.exp(x)  # noqa: E731
    est = ppl_ratio(pa.log_ppl, pb.log_ppl)
    return {
        "a": names[0],
        "b": names[1],
        "judge": judge,
        "k": pa.k,
        "n_prompts": len(pa.uid),
        "n_boot": n_boot,
        "seed": seed,
        "p_kind": p_kind,
        "differences": diffs,
        "ppl_ratio": {"est": est if math.isfinite(est) else None, "ci": [ex(lp["ci"][0]), ex(lp["ci"][1])]},
    }
