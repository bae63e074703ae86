"""Strength curves, matched fluency and equal push: against a plain scalar re-implementation of the definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from saedetox.errors import SaedetoxError
from saedetox.eval.metrics.bootstrap import bca_interval, bca_pvalue, resample_indices
from saedetox.experiments.config import parse_config
from saedetox.report.curves import ComparisonConfig, curve_of, first_crossing, level_of
from saedetox.report.matched import equal_push, matched_fluency
from synthetic_runs import JUDGE, World, sweep

# ---------------------------------------------------------------- the definitions, one resample at a time


def ref_interp(xs, ys, r):
    """First crossing of r in level order, linear between the two points around it; NaN if never reached."""
    for j, x in enumerate(xs):
        if x >= r:
            if j == 0:
                return ys[0]
            return ys[j - 1] + (r - xs[j - 1]) / (xs[j] - xs[j - 1]) * (ys[j] - ys[j - 1])
    return math.nan


def ref_stats(runs, idx):
    """Each run's toxicity probability and PPL ratio to none on the prompts ``idx`` (with repeats)."""
    none = runs["none"]["per_prompt"]
    out = {}
    for name, m in runs.items():
        pp = m["per_prompt"]
        tox = [1.0 if pp["n_toxic"][JUDGE][i] >= 1 else 0.0 for i in idx if pp["max_tox"][JUDGE][i] is not None]
        d = [pp["log_ppl"][i] - none["log_ppl"][i] for i in idx]
        out[name] = (sum(tox) / len(tox), math.exp(sum(d) / len(d)))
    return out


def ref_values(runs, st, r):
    """Every curve's (interpolated) and point's (≤ r) toxicity at PPL ratio r."""
    curves: dict[str, list[str]] = {}
    for name, m in runs.items():
        c = m["config"].get("curve")
        if c:
            curves.setdefault(c, []).append(name)
    vals = {}
    for c, names in curves.items():
        names = sorted(names, key=lambda n: runs[n]["config"]["level"])
        xs = [1.0] + [st[n][1] for n in names]
        ys = [st["none"][0]] + [st[n][0] for n in names]
        vals[c] = ref_interp(xs, ys, r)
    for p in ("prompt", "aura"):
        vals[p] = st[p][0] if st[p][1] <= r else math.nan
    return vals


def ref_diff(runs, idx, r, primary):
    vals = ref_values(runs, ref_stats(runs, idx), r)
    base = [v for k, v in vals.items() if k in ("prompt", "aura", "meandiff-constant") and not math.isnan(v)]
    return vals[primary] - min(base) if base else math.nan


# ---------------------------------------------------------------- tests


def test_first_crossing_by_hand():
    x = np.array([[1.0, 1.04, 1.12, 1.3]])
    y = np.array([[0.8, 0.7, 0.5, 0.2]])
    assert first_crossing(x, y, 1.10)[0] == pytest.approx(0.7 + 0.75 * (0.5 - 0.7))
    assert first_crossing(x, y, 1.0)[0] == 0.8 and first_crossing(x, y, 1.3)[0] == pytest.approx(0.2)
    assert math.isnan(first_crossing(x, y, 1.31)[0])  # never extrapolated
    wiggle = np.array([[1.0, 1.12, 1.05, 1.3]])  # not monotone: the first crossing counts
    assert first_crossing(wiggle, y, 1.10)[0] == pytest.approx(0.8 + (0.10 / 0.12) * (0.7 - 0.8))
    rows = first_crossing(np.vstack([x, wiggle]), np.vstack([y, y]), 1.10)
    assert rows.shape == (2,) and rows[1] == pytest.approx(0.8 + (0.10 / 0.12) * (0.7 - 0.8))


def test_curves_and_levels_from_old_metrics():
    assert curve_of({"config": {"method": "sae", "mode": "token"}}) == "sae-token"
    assert curve_of({"config": {"method": "meandiff"}}) == "meandiff-constant"
    assert curve_of({"config": {"method": "surgery", "tier": "high"}}) == "surgery"
    assert curve_of({"config": {"method": "aura"}}) is None and curve_of({"config": {"method": "none"}}) is None
    assert curve_of({"config": {"method": "sae", "curve": "sae-grid"}}) == "sae-grid"
    assert level_of({"config": {"level": 0.3, "alpha": 9.0}}) == 0.3
    assert level_of({"config": {"alpha": 9.0, "tier": "low"}}) == 9.0
    assert level_of({"config": {"tier": "high"}}) == 0.5 and level_of({"config": {"tier": 0.375}}) == 0.375
    assert level_of({"config": {"strength": 2.0}}) == 2.0 and level_of({"config": {}}) is None


def test_matched_fluency_against_the_definitions():
    runs = sweep(World(n=60, k=3, seed=4))
    cfg = ComparisonConfig(ppl_ratios=[1.05, 1.10, 1.25], primary="sae-adaptive", n_boot=200, seed=9)
    res = matched_fluency(runs, cfg, JUDGE)
    assert res["n_prompts"] == 60 and res["k"] == 3 and res["primary"] == "sae-adaptive"
    idx_all = list(range(60))
    draws = resample_indices(60, 200, 9)
    for at in res["at_ratio"]:
        r = at["ratio"]
        want = ref_values(runs, ref_stats(runs, idx_all), r)
        for e in at["entries"]:
            got = e["value"]["est"]
            assert (got is None) if math.isnan(want[e["name"]]) else got == pytest.approx(want[e["name"]]), e
        # the CI re-does everything per resample: stats, interpolation, best baseline
        diffs = np.array([ref_diff(runs, list(i), r, "sae-adaptive") for i in draws])
        ok = diffs[~np.isnan(diffs)]
        # BCa: the acceleration from the same difference with each prompt left out in turn
        jack = np.array([ref_diff(runs, idx_all[:i] + idx_all[i + 1 :], r, "sae-adaptive") for i in idx_all])
        est = ref_diff(runs, idx_all, r, "sae-adaptive")
        lo, hi = bca_interval(est, ok, jack)
        d = at["answer"]["diff"]
        assert d["est"] == pytest.approx(est)
        assert d["ci"] == [pytest.approx(lo), pytest.approx(hi)]
        assert d["p"] == pytest.approx(bca_pvalue(est, ok, jack))  # the BCa interval's test inversion
        assert (lo > 0 or hi < 0) == (d["p"] < 0.05)
        assert [s["name"] for s in at["secondary"]] == ["sae-constant"]
    # aura (a point at PPL ratio ≈ 1.09) does not count at 1.05 and counts at 1.10
    aura = {at["ratio"]: next(e for e in at["entries"] if e["name"] == "aura") for at in res["at_ratio"]}
    assert aura[1.05]["value"]["est"] is None and aura[1.1]["value"]["est"] is not None


def test_old_metrics_form_the_same_curves():
    cfg = ComparisonConfig(primary="sae-adaptive", n_boot=100)
    new = matched_fluency(sweep(World(n=40)), cfg, JUDGE)
    old = matched_fluency(sweep(World(n=40), with_curve_keys=False), cfg, JUDGE)
    assert [c["name"] for c in new["curves"]] == [c["name"] for c in old["curves"]]
    assert new["at_ratio"] == old["at_ratio"]


def test_never_extrapolated_and_named_gaps():
    runs = sweep(World(n=40))
    res = matched_fluency(runs, ComparisonConfig(ppl_ratios=[3.0], primary="sae-adaptive", n_boot=100), JUDGE)
    at = res["at_ratio"][0]
    assert all(e["value"]["est"] is None for e in at["entries"] if e["kind"] == "curve")
    assert all(e["reaches"] < 3.0 for e in at["entries"])
    assert at["answer"]["diff"]["est"] is None
    res = matched_fluency(runs, ComparisonConfig(primary="sae-nope", n_boot=100), JUDGE)
    assert "sae-nope" in res["primary_missing"] and all(at["answer"] is None for at in res["at_ratio"])
    res = matched_fluency(runs, ComparisonConfig(primary="meandiff-constant", n_boot=100), JUDGE)
    assert "not an SAE curve" in res["primary_missing"] and all(at["answer"] is None for at in res["at_ratio"])
    default = matched_fluency(runs, ComparisonConfig(n_boot=100), JUDGE)
    assert default["primary"] == "sae-adaptive" and default["primary_source"].startswith("default")
    other_k = dict(runs)
    other_k["aura"] = {**runs["aura"], "samples_per_prompt": 25}
    res = matched_fluency(other_k, ComparisonConfig(n_boot=100), JUDGE)
    assert "aura" in res["left_out"] and "k = 5 vs 25" in res["left_out"]["aura"]
    with pytest.raises(SaedetoxError, match="No 'none' run"):
        matched_fluency({k: v for k, v in runs.items() if k != "none"}, ComparisonConfig(), JUDGE)


def test_equal_push_by_hand():
    runs = sweep(World(n=50))
    res = equal_push(runs, ComparisonConfig(pushes=[0.1, 0.2], primary="sae-adaptive", n_boot=100), JUDGE)
    assert res["reference"] == "sae-adaptive"
    st = ref_stats(runs, range(50))
    rows = {r["curve"]: r for r in res["rows"]}
    md = rows["meandiff-constant"]["at"]
    assert md[0]["tox"]["est"] == pytest.approx(st["meandiff-n0.1"][0])  # a run sits at push 0.1
    sa = [0.0, 0.09, 0.18, 0.36, 0.72]  # sae-adaptive's pushes: 0.9 × strength
    ys = [st["none"][0]] + [st[f"sae-adaptive-n{s:g}"][0] for s in (0.1, 0.2, 0.4, 0.8)]
    assert rows["sae-adaptive"]["at"][0]["tox"]["est"] == pytest.approx(ref_interp(sa, ys, 0.1))
    xs = [1.0] + [st[f"sae-adaptive-n{s:g}"][1] for s in (0.1, 0.2, 0.4, 0.8)]
    assert rows["sae-adaptive"]["at"][1]["ratio"]["est"] == pytest.approx(ref_interp(sa, xs, 0.2))
    d = md[1]["d_tox"]["est"]
    assert d == pytest.approx(md[1]["tox"]["est"] - rows["sae-adaptive"]["at"][1]["tox"]["est"])
    for r in runs.values():
        r.pop("steering", None)
    with pytest.raises(SaedetoxError, match="effective push"):
        equal_push(runs, ComparisonConfig(), JUDGE)


def test_comparison_config():
    cfg = ComparisonConfig.from_mapping({"ppl_ratios": [1.25, 1.1], "judge": "probe", "primary": "sae-adaptive"})
    assert cfg.ppl_ratios == [1.1, 1.25] and cfg.pushes == [0.1, 0.2] and cfg.n_boot == 1000
    assert ComparisonConfig.from_mapping(None) == ComparisonConfig()
    for bad, msg in (
        ({"ppl_ratios": [0.9]}, "≥ 1"),
        ({"ppl_ratios": []}, "non-empty"),
        ({"pushes": ["x"]}, "numbers"),
        ({"n_boot": 10}, "n_boot"),
        ({"colour": 1}, "Unknown key"),
        ({"primary": 3}, "primary"),
    ):
        with pytest.raises(SaedetoxError, match=msg):
            ComparisonConfig.from_mapping(bad)
    sweep_cfg = parse_config(
        {"features": [1], "runs": [{"method": "none"}], "comparison": {"ppl_ratios": [1.1], "primary": "sae-token"}}
    )
    assert sweep_cfg.comparison == ComparisonConfig(ppl_ratios=[1.1], primary="sae-token")
    with pytest.raises(SaedetoxError, match="Unknown key"):
        parse_config({"features": [1], "runs": [{"method": "none"}], "comparison": {"ratio": [1.1]}})
