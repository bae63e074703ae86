"""Sweep configs: schema validation, run planning, the packaged configs, splitting coverage."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import pytest
import torch

from saedetox.errors import SaedetoxError
from saedetox.splitting import conclusion, latents_for_coverage
from saedetox.sweep import load_config, parse_config, plan

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


def test_latents_for_coverage_omp():
    eye = torch.eye(4)
    target = torch.tensor([3.0, 4.0, 0.0, 0.0])  # 36% on e0, 64% on e1
    assert latents_for_coverage(eye, target, 0.6) == 1
    assert latents_for_coverage(eye, target, 0.99) == 2
    assert latents_for_coverage(eye[2:], target, 0.5, cap=7) == 7  # never covered


def test_conclusion_states_the_trend():
    rows = [
        {"width": w, "tox_prob": t, "tox_prob_none": 0.8, "latents_for_coverage": c, "coverage_target": 0.8}
        for w, t, c in ((1024, 0.4, 5), (2048, 0.5, 9), (4096, 0.6, 17))
    ]
    text = conclusion(rows)
    assert "weakens" in text and "more latents" in text


def test_numeric_tiers_in_a_sweep():
    cfg = parse_config(
        BASE | {"runs": [{"method": "sae", "tiers": ["medium", 0.375]}, {"method": "meandiff", "tiers": [0.375]}]}
    )
    assert [r.name for r in plan(cfg)] == ["sae-constant-medium", "sae-constant-n0.375", "meandiff-n0.375"]
    with pytest.raises(SaedetoxError, match="named tiers"):
        parse_config(BASE | {"runs": [{"method": "surgery", "tiers": [0.375]}]})
    with pytest.raises(SaedetoxError, match="Unknown tier"):
        parse_config(BASE | {"runs": [{"method": "sae", "tiers": ["huge"]}]})
