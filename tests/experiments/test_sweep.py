"""Sweep configs: schema validation, run planning, the packaged configs; a sweep resumes and writes its report."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

import pytest

from helpers import tiny_gpt2, write_sae
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


def test_sweep_resumes_and_writes_report(tmp_path):
    lm = tiny_gpt2()
    lm.model.save_pretrained(tmp_path / "m")
    lm.tokenizer.save_pretrained(tmp_path / "m")
    sae = write_sae(tmp_path / "sae", lm.d_model)
    raw = {
        "model": str(tmp_path / "m"),
        "sae": str(sae),
        "features": [1, 2, 3],
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

    model = tmp_path / "m"
    gpt2.model.save_pretrained(model)
    gpt2.tokenizer.save_pretrained(model)
    raw = {
        "model": str(model),
        "sae": str(sae_dir),
        "features": [1, 5, 7, 12],
        "evaluation": {"n_prompts": 4, "samples": 1, "max_new_tokens": 4, "batch_size": 4, "clean_texts": 0},
        "runs": runs,
    }
    res = run_sweep(parse_config(raw), tmp_path / "sweep")
    a, b = (res[r.name]["config"]["push_calibration"] for r in (first, second))
    assert a["start_alpha"] != b["start_alpha"]
    assert b["start_alpha"] == pytest.approx([a["alpha"][0] * 0.3 / 0.1])  # the previous level's α, rescaled
    assert b["history_alpha"][0] == b["start_alpha"] and b["within_tolerance"]
