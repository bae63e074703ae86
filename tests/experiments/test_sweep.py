"""Sweep configs: schema validation, run planning, the packaged configs; a sweep resumes and writes its report."""

from __future__ import annotations

import json
import os
from importlib.resources import files
from pathlib import Path

import pytest
import torch

from helpers import tiny_world
from saedetox.errors import SaedetoxError
from saedetox.experiments.config import load_config, parse_config
from saedetox.experiments.plan import plan
from saedetox.experiments.sweep import run_sweep

BASE = {
    "features": [1, 2],
    "runs": [{"method": "none"}, {"method": "sae", "modes": ["constant", "token"], "tiers": ["low", "high"]}],
}


def test_plan_names_runs_stably():
    cfg = parse_config(BASE | {"runs": BASE["runs"] + [{"method": "meandiff", "strengths": [2.5]}, {"method": "aura"}]})
    names = [r.name for r in plan(cfg)]
    assert names == [
        "none",
        "sae-constant-low",
        "sae-constant-high",
        "sae-token-low",
        "sae-token-high",
        "meandiff-a2.5",
        "aura",
    ]


@pytest.mark.parametrize(
    "bad,msg",
    [
        ({"runs": []}, "non-empty"),
        ({"runs": [{"method": "magic"}]}, "Unknown method"),
        ({"runs": [{"method": "sae", "modes": ["sideways"]}]}, "Unknown mode"),
        ({"runs": [{"method": "sae", "tiers": ["extreme"]}]}, "Unknown tier"),
        ({"colour": 1}, "Unknown key"),
        ({"evaluation": {"samplez": 3}}, "Unknown key"),
        ({"runs": [{"method": "none"}, {"method": "none"}]}, "Duplicate"),
        ({"workers": 0}, "workers must be"),
        ({"workers": "two"}, "workers must be"),
    ],
)
def test_bad_configs(bad, msg):
    with pytest.raises(SaedetoxError, match=msg):
        plan(parse_config(BASE | bad))


def test_push_levels_and_meandiff_modes_in_a_sweep():
    runs = [
        {"method": "sae", "modes": ["constant", "token"], "push": [0.1, 0.25]},
        {"method": "meandiff", "modes": ["constant", "adaptive"], "push": [0.1], "tiers": ["low"]},
    ]
    planned = plan(parse_config(BASE | {"runs": runs}))
    assert [r.name for r in planned] == [
        "sae-constant-p0.1",
        "sae-constant-p0.25",
        "sae-token-p0.1",
        "sae-token-p0.25",
        "meandiff-low",
        "meandiff-p0.1",
        "meandiff-adaptive-low",
        "meandiff-adaptive-p0.1",
    ]
    assert planned[2].push == 0.1 and planned[2].tier is None and planned[-1].mode == "adaptive"
    for bad, msg in (
        ([{"method": "meandiff", "modes": ["token"]}], "meandiff runs take modes"),
        ([{"method": "surgery", "push": [0.1]}], "push levels are for"),
        ([{"method": "sae", "push": [0]}], r"\(0, 8\]"),
    ):
        with pytest.raises(SaedetoxError, match=msg):
            parse_config(BASE | {"runs": bad})


def test_a_scalar_level_is_a_one_element_list():
    scalar = [{"method": "sae", "modes": "token", "push": 0.2}, {"method": "meandiff", "tiers": "low", "strengths": 2}]
    listed = [
        {"method": "sae", "modes": ["token"], "push": [0.2]},
        {"method": "meandiff", "tiers": ["low"], "strengths": [2]},
    ]
    assert [r.name for r in plan(parse_config(BASE | {"runs": scalar}))] == [
        r.name for r in plan(parse_config(BASE | {"runs": listed}))
    ]
    assert parse_config(BASE | {"runs": scalar}).runs[0].push == [0.2]
    for bad in ({"push": True}, {"push": {"a": 1}}, {"modes": 3}):
        with pytest.raises(SaedetoxError, match="must be a list of"):
            parse_config(BASE | {"runs": [{"method": "sae", **bad}]})


def test_planner_sets_curves_levels_and_adaptive_pooling(gpt2, sae_dir):
    from saedetox.experiments.sweep import _method

    runs = [
        {"method": "surgery", "tiers": ["low", "high"]},
        {"method": "sae", "modes": ["adaptive"], "push": [0.2], "pooling": "token"},
        {"method": "sae", "modes": ["adaptive", "constant"], "push": [0.2]},
        {"method": "meandiff", "modes": ["adaptive"], "push": [0.2], "pooling": "token"},
    ]
    cfg = parse_config(BASE | {"sae": str(sae_dir), "runs": runs})
    planned = plan(cfg)
    got = [(r.name, r.curve, r.level, r.pooling) for r in planned]
    assert got == [
        ("surgery-low", "surgery", 0.125, None),
        ("surgery-high", "surgery", 0.5, None),
        ("sae-adaptive-token-p0.2", "sae-adaptive-token", 0.2, "token"),
        ("sae-adaptive-p0.2", "sae-adaptive", 0.2, None),
        ("sae-constant-p0.2", "sae-constant", 0.2, None),
        ("meandiff-adaptive-token-p0.2", "meandiff-adaptive-token", 0.2, "token"),
    ]
    det = {"kind": "latents", "coef": [1.0, 1.0], "intercept": 0.0, "scale": [1.0, 1.0], "pooling": "max"}
    pooled = [_method(cfg, gpt2, planned[i], [1, 2], None, None, det).steerer.spec.interventions[0] for i in (2, 3)]
    assert [iv.detector["pooling"] for iv in pooled] == ["token", "max"] and det["pooling"] == "max"
    for bad in ({"method": "sae", "modes": ["constant"], "pooling": "token"}, {"method": "sae", "pooling": "mean"}):
        with pytest.raises(SaedetoxError, match="pooling"):
            parse_config(BASE | {"runs": [bad | {"modes": bad.get("modes", ["adaptive"])}]})


def test_sweep_and_splitting_share_the_gate_rule(gpt2, sae_dir):
    from saedetox.experiments.config import SplittingCfg
    from saedetox.experiments.plan import PlannedRun
    from saedetox.experiments.splitting import width_intervention
    from saedetox.experiments.sweep import _method
    from saedetox.steering.spec import default_gates

    feats = {"selected": [1, 2], "thresholds": [0.3, 0.4]}
    cfg = parse_config(BASE | {"sae": str(sae_dir)})
    for mode in ("constant", "conditional", "token"):
        run = PlannedRun(name="x", method="sae", mode=mode, tier="low", sae=str(sae_dir))
        iv = _method(cfg, gpt2, run, [1, 2], feats["thresholds"], None).steerer.spec.interventions[0]
        split = width_intervention(str(sae_dir), feats, None, SplittingCfg(mode=mode))
        assert (iv.threshold, iv.thresholds) == (split.threshold, split.thresholds) == default_gates(mode, feats)
    assert default_gates("token", feats) == (0.0, None)  # the splitting study used discovery gates here before


def test_sae_runs_need_features_or_discovery():
    with pytest.raises(SaedetoxError, match="features"):
        parse_config({"runs": [{"method": "sae"}]})


def test_packaged_configs_parse(tmp_path):
    root = Path(str(files("saedetox") / "configs"))
    paths = sorted(root.rglob("*.yaml"))
    assert any(p.name == "demo.yaml" for p in paths)
    for p in paths:
        assert plan(load_config(p))
    (tmp_path / "x.yaml").write_text("runs: [")
    with pytest.raises(SaedetoxError, match="YAML"):
        load_config(tmp_path / "x.yaml")


def test_numeric_tiers_in_a_sweep():
    cfg = parse_config(
        BASE | {"runs": [{"method": "sae", "tiers": ["medium", 0.375]}, {"method": "meandiff", "tiers": [0.375]}]}
    )
    assert [r.name for r in plan(cfg)] == ["sae-constant-medium", "sae-constant-n0.375", "meandiff-n0.375"]
    with pytest.raises(SaedetoxError, match="named tiers"):
        parse_config(BASE | {"runs": [{"method": "surgery", "tiers": [0.375]}]})
    with pytest.raises(SaedetoxError, match="Unknown tier"):
        parse_config(BASE | {"runs": [{"method": "sae", "tiers": ["huge"]}]})


@pytest.mark.slow
def test_sweep_resumes_and_writes_report(tmp_path):
    raw = {
        **tiny_world(tmp_path),
        "evaluation": {"n_prompts": 4, "samples": 2, "max_new_tokens": 3, "batch_size": 4, "clean_texts": 2},
        "runs": [{"method": "none"}, {"method": "sae", "modes": ["constant"], "tiers": ["low"]}, {"method": "prompt"}],
    }
    out = tmp_path / "sweep"
    first = run_sweep(parse_config(raw), out)
    assert set(first) == {"none", "sae-constant-low", "prompt"}
    assert first["sae-constant-low"]["config"]["curve"] == "sae-constant"  # the planner's curve and level
    assert first["sae-constant-low"]["config"]["level"] == 0.125 and first["prompt"]["config"]["curve"] is None
    stamp = (out / "runs" / "none" / "generations.jsonl").stat().st_mtime_ns
    (out / "runs" / "prompt" / "metrics.json").unlink()
    second = run_sweep(parse_config(raw), out)
    assert (out / "runs" / "none" / "generations.jsonl").stat().st_mtime_ns == stamp
    assert second["prompt"]["toxicity"] == first["prompt"]["toxicity"]
    html = (out / "report.html").read_text()
    assert "sae-constant-low" in html and "<img" in html
    assert json.loads((out / "metrics.json").read_text()).keys() == first.keys()


def _saved_world(tmp_path: Path, gpt2, sae_dir, evaluation: dict, runs: list) -> dict:
    """A sweep mapping over the tiny model saved to ``tmp_path/m`` and the test SAE (latents 1, 5, 7, 12)."""
    model = tmp_path / "m"
    gpt2.model.save_pretrained(model)
    gpt2.tokenizer.save_pretrained(model)
    return {"model": str(model), "sae": str(sae_dir), "features": [1, 5, 7, 12], "evaluation": evaluation, "runs": runs}


@pytest.mark.slow
def test_a_push_curve_starts_each_calibration_from_the_previous_level(tmp_path, gpt2, sae_dir):
    from saedetox.experiments.sweep import _method, warm_start

    runs = [{"method": "sae", "modes": ["token"], "push": [0.1, 0.3], "threshold": 0.05}]
    cfg = parse_config(BASE | {"sae": str(sae_dir), "runs": runs})
    first, second = plan(cfg)
    m = _method(cfg, gpt2, second, [1, 5, 7, 12], None, None)
    assert warm_start(m, {"target": [0.1], "alpha": [2.0]}) == pytest.approx([6.0])  # 2.0 × 0.3 / 0.1
    assert warm_start(m, None) is None and warm_start(m, {"target": [0.1, 0.2], "alpha": [1.0, 1.0]}) is None
    constant = parse_config(BASE | {"sae": str(sae_dir), "runs": [{"method": "sae", "push": [0.3]}]})
    assert (
        warm_start(_method(constant, gpt2, plan(constant)[0], [1, 5], None, None), {"target": [0.1], "alpha": [2.0]})
        is None
    )

    evaluation = {"n_prompts": 4, "samples": 1, "max_new_tokens": 4, "batch_size": 4, "clean_texts": 0}
    raw = _saved_world(tmp_path, gpt2, sae_dir, evaluation, runs)
    res = run_sweep(parse_config(raw), tmp_path / "sweep")
    a, b = (res[r.name]["config"]["push_calibration"] for r in (first, second))
    assert a["start_alpha"] != b["start_alpha"]
    assert b["start_alpha"] == pytest.approx([a["alpha"][0] * 0.3 / 0.1])  # the previous level's α, rescaled
    assert b["history_alpha"][0] == b["start_alpha"] and b["within_tolerance"]


def _same(a, b, where: str = "") -> None:
    """Equal metrics, wall-clock times aside; floats to 1e-6 (conditional-PPL scores computed in float32 in another
    process differ in their last bits, and BCa bounds are interpolated quantiles of them)."""
    if isinstance(a, dict):
        keys = {k for k in a if "seconds" not in k}
        assert keys == {k for k in b if "seconds" not in k}, where
        for k in keys:
            _same(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert b == pytest.approx(a, rel=1e-6, nan_ok=True), where
    else:
        assert a == b, where


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "fork"), reason="workers fork")
def test_workers_give_the_same_numbers_as_one_process(tmp_path, gpt2, sae_dir, monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)  # CI has 2 cores; so that the test runs everywhere the same
    runs = [
        {"method": "none"},
        {"method": "sae", "modes": ["token"], "push": [0.1, 0.3], "threshold": 0.05},
        {"method": "sae", "modes": ["constant"], "tiers": ["low", "high"]},
        {"method": "prompt"},
    ]
    evaluation = {"n_prompts": 6, "samples": 2, "max_new_tokens": 4, "batch_size": 4, "clean_texts": 1}
    raw = _saved_world(tmp_path, gpt2, sae_dir, evaluation, runs)
    one = run_sweep(parse_config(raw), tmp_path / "one")
    two = run_sweep(parse_config(raw | {"workers": 2}), tmp_path / "two")
    assert list(two) == list(one)  # in planned order
    _same(one, two)  # calibration warm starts included: a curve stays in one worker
    assert one["sae-token-p0.3"]["config"]["push_calibration"] == two["sae-token-p0.3"]["config"]["push_calibration"]
    for name in one:
        a = (tmp_path / "one" / "runs" / name / "generations.jsonl").read_bytes()
        assert (tmp_path / "two" / "runs" / name / "generations.jsonl").read_bytes() == a


def test_curves_stay_whole_and_in_order_when_dealt_to_workers():
    from saedetox.experiments.plan import PlannedRun
    from saedetox.experiments.workers import assign, groups_of, worker_count

    runs = [
        PlannedRun("none", "none", capability=True),
        *(PlannedRun(f"a{i}", "sae", curve="a", capability=i == 0) for i in range(4)),
        *(PlannedRun(f"b{i}", "sae", curve="b") for i in range(4)),
        PlannedRun("prompt", "prompt"),
        *(PlannedRun(f"c{i}", "meandiff", curve="c") for i in range(3)),
    ]
    groups = groups_of(runs)
    assert groups == [[0], [1, 2, 3, 4], [5, 6, 7, 8], [9], [10, 11, 12]]
    shares = assign(runs, groups, 2)
    assert sorted(i for s in shares for i in s) == list(range(len(runs)))
    for g in groups[1:]:
        assert any(all(i in s for i in g) for s in shares)  # a curve is never split
    assert all(s == sorted(s) for s in shares)
    costs = [sum(1 + int(runs[i].capability) for i in s) for s in shares]
    assert abs(costs[0] - costs[1]) <= 2  # 8 and 7 of 15
    assert worker_count(4, torch.device("meta"), 5) == 1  # never off the CPU
    assert worker_count(1, torch.device("cpu"), 5) == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="workers fork")
def test_a_failing_worker_stops_the_sweep_with_its_own_error():
    from saedetox.experiments.plan import PlannedRun
    from saedetox.experiments.workers import run_all

    def run_one(r):
        if r.name == "b1":
            raise SaedetoxError("b1 cannot run: no such SAE.")
        return {"name": r.name}

    runs = [PlannedRun(f"a{i}", "sae", curve="a") for i in range(2)] + [
        PlannedRun(f"b{i}", "sae", curve="b") for i in range(2)
    ]
    assert run_all(runs[:2], run_one, 2, 2) == {"a0": {"name": "a0"}, "a1": {"name": "a1"}}  # one curve: here
    with pytest.raises(SaedetoxError, match="b1 cannot run"):
        run_all(runs, run_one, 2, 2)

    def crash(r):
        if r.name == "a0":
            os._exit(3)  # a worker killed without a word
        return {}

    with pytest.raises(SaedetoxError, match="exit code 3"):
        run_all(runs, crash, 2, 2)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="workers fork")
def test_workers_run_side_by_side_whatever_their_results_weigh(tmp_path):
    """One worker's large results must not hold it up while the parent listens to the other."""
    import time

    from saedetox.experiments.plan import PlannedRun
    from saedetox.experiments.workers import run_all

    flag = tmp_path / "b1-ran"

    def run_one(r):
        if r.name == "a0":  # waits until the other worker has got past its large result
            t0 = time.time()
            while not flag.exists():
                if time.time() - t0 > 30:
                    raise SaedetoxError("the other worker never ran b1")
                time.sleep(0.01)
        if r.name == "b0":
            return {"big": list(range(200_000))}  # far more than a pipe's buffer
        if r.name == "b1":
            flag.touch()
        return {"name": r.name}

    runs = [PlannedRun(f"a{i}", "sae", curve="a") for i in range(2)] + [
        PlannedRun(f"b{i}", "sae", curve="b") for i in range(2)
    ]
    res = run_all(runs, run_one, 2, 2)
    assert list(res) == ["a0", "a1", "b0", "b1"] and len(res["b0"]["big"]) == 200_000


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "fork"), reason="workers fork")
def test_a_workers_sweep_killed_mid_run_resumes_to_the_same_numbers(tmp_path, gpt2, sae_dir, monkeypatch):
    import saedetox.experiments.sweep as sweep_module

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    runs = [
        {"method": "none"},
        {"method": "sae", "modes": ["token"], "push": [0.1, 0.3], "threshold": 0.05},
        {"method": "sae", "modes": ["constant"], "tiers": ["low", "high"]},
    ]
    evaluation = {"n_prompts": 6, "samples": 2, "max_new_tokens": 4, "batch_size": 4, "clean_texts": 1}
    raw = _saved_world(tmp_path, gpt2, sae_dir, evaluation, runs) | {"workers": 2}
    whole = run_sweep(parse_config(raw), tmp_path / "whole")
    killed = tmp_path / "killed-once"
    real = sweep_module.evaluate

    def dies_once(lm, run, *a, **k):
        if run.name == "sae-token-p0.3" and not killed.exists():
            killed.touch()
            os._exit(9)  # the worker dies mid-sweep, as under kill -9
        return real(lm, run, *a, **k)

    monkeypatch.setattr(sweep_module, "evaluate", dies_once)
    with pytest.raises(SaedetoxError, match="stopped without a word"):
        run_sweep(parse_config(raw), tmp_path / "resumed")
    assert (tmp_path / "resumed" / "runs" / "sae-token-p0.1" / "metrics.json").exists()
    assert not (tmp_path / "resumed" / "metrics.json").exists()
    resumed = run_sweep(parse_config(raw), tmp_path / "resumed")
    strip = lambda m: {k: {x: y for x, y in v.items() if "seconds" not in x} for k, v in m.items()}  # noqa: E731
    assert strip(resumed) == strip(whole)  # exactly: the same processes and threads for every run


def test_discovery_section_takes_the_gate_settings():
    from saedetox.experiments.config import parse_config
    from saedetox.experiments.features import discovery_key, gate_options

    runs = [{"method": "none"}]
    cfg = parse_config({"discovery": {"k": 5, "gate_rate": 0.05, "max_clean_open": 0.04}, "runs": runs})
    assert gate_options(cfg.discovery).gate_rate == 0.05
    key = discovery_key(cfg.discovery)
    assert key["gate_rate"] == 0.05 and "detector_target" not in key  # settings as before left out: caches match
    # the default is the joint gate at 0.05: in the key, so a cache made with per-latent thresholds is stale
    assert discovery_key(parse_config({"discovery": {}, "runs": runs}).discovery)["gate_rate"] == 0.05
    for off in (0, None):  # per-latent thresholds: the key of discovery before the gate settings existed
        assert set(discovery_key(parse_config({"discovery": {"gate_rate": off}, "runs": runs}).discovery)) == {
            "method",
            "k",
            "min_auroc",
            "max_pairs",
        }
    with pytest.raises(SaedetoxError):
        parse_config({"discovery": {"gate_rate": 2}, "runs": runs})


def test_discovery_k_takes_a_grid_or_auto():
    from saedetox.experiments.config import parse_config
    from saedetox.experiments.features import discovery_key

    runs = [{"method": "none"}]
    assert parse_config({"discovery": {"k": [20, 5, 10]}, "runs": runs}).discovery.k == [5, 10, 20]
    auto = parse_config({"discovery": {"k": "auto"}, "runs": runs}).discovery
    assert auto.k == [5, 10, 20, 40] and discovery_key(auto)["k"] == [5, 10, 20, 40]  # JSON-equal in a cache
    assert parse_config({"discovery": {"k": 20}, "runs": runs}).discovery.k == 20
    for bad in (0, [], "many", [5, 0]):
        with pytest.raises(SaedetoxError, match="discovery.k"):
            parse_config({"discovery": {"k": bad}, "runs": runs})


def test_another_sweeps_discovery_is_reused_only_under_the_same_key(tmp_path, gpt2, sae_dir, monkeypatch):
    import saedetox.experiments.features as feats

    calls = []

    def fake_discovery(d, lm, sae, hook, data_dir, chat=False):
        calls.append(d.k)
        return {"selected": list(range(d.k)), "thresholds": None}

    monkeypatch.setattr(feats, "run_discovery", fake_discovery)
    runs = [{"method": "sae", "push": [0.1]}]
    cfg = parse_config({"model": "gpt2", "sae": str(sae_dir), "discovery": {"k": 3}, "runs": runs})
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert feats.resolve_features(cfg, gpt2, tmp_path / "a")[0] == [0, 1, 2] and calls == [3]
    # same key: copied, no discovery
    assert feats.resolve_features(cfg, gpt2, tmp_path / "b", reuse=tmp_path / "a")[0] == [0, 1, 2] and calls == [3]
    assert json.loads((tmp_path / "b" / "features.json").read_text())["sweep_key"]["k"] == 3
    # other settings: discovery runs; a missing folder to reuse is no error
    other = parse_config({"model": "gpt2", "sae": str(sae_dir), "discovery": {"k": 2}, "runs": runs})
    (tmp_path / "c").mkdir()
    assert feats.resolve_features(other, gpt2, tmp_path / "c", reuse=tmp_path / "a")[0] == [0, 1] and calls == [3, 2]
    (tmp_path / "d").mkdir()
    assert feats.resolve_features(other, gpt2, tmp_path / "d", reuse=tmp_path / "nope")[0] == [0, 1]


def test_a_run_group_names_its_training_judge_for_methods_that_learn_from_one():
    runs = [{"method": "rectification", "tiers": ["low"], "train_judge": "Probe"}]
    (r,) = plan(parse_config(BASE | {"runs": runs}))
    assert r.name == "rectification-low" and r.train_judge == "probe"
    with pytest.raises(SaedetoxError, match="Unknown training judge 'nope'"):
        parse_config(BASE | {"runs": [{"method": "rectification", "train_judge": "nope"}]})
    with pytest.raises(SaedetoxError, match="train_judge is for rectification runs, not 'meandiff'"):
        parse_config(BASE | {"runs": [{"method": "meandiff", "train_judge": "probe"}]})
