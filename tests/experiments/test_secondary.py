"""A sweep's secondary question: validation offline, and a small sweep end to end (with a refined robustness level)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from helpers import tiny_world
from saedetox.errors import SaedetoxError
from saedetox.experiments.config import parse_config
from saedetox.experiments.sweep import dry_run, run_sweep

RUNS = [{"method": "none"}, {"method": "prompt"}, {"method": "sae", "modes": ["constant"], "push": [0.05, 0.1]}]
SECTION = {
    "prompts": "mixed:test",
    "n_prompts": 6,
    "runs": ["sae-constant", "prompt"],
    "pairs": [["sae-constant", "prompt"]],
}


@pytest.mark.parametrize(
    "section,msg",
    [
        (SECTION, "set secondary.ppl_ratio"),  # a curve stands for one level: the ratio picks it
        (SECTION | {"runs": ["aura", "prompt"], "pairs": [["aura", "prompt"]]}, "no run or curve of this sweep: aura"),
        (SECTION | {"ppl_ratio": 1.1, "judge": "detoxify"}, "not among the evaluation's judges"),
    ],
)
def test_bad_secondary_sections_are_refused_offline(section, msg):
    with pytest.raises(SaedetoxError, match=msg):
        dry_run(parse_config({"features": [1, 2], "runs": RUNS, "secondary": section}))


def test_the_demo_config_asks_its_secondary_question_on_mixed_prompts():
    from importlib.resources import files

    from saedetox.experiments.config import load_config

    cfg = load_config(files("saedetox") / "configs" / "demo.yaml")
    assert cfg.secondary is not None and cfg.secondary.prompts == "mixed:test" and cfg.secondary.n_prompts == 150
    assert ["sae-conditional", "meandiff"] in cfg.secondary.pairs and [
        "sae-constant",
        "meandiff",
    ] in cfg.secondary.pairs
    assert dry_run(cfg)[-1].startswith("secondary: 3 runs on mixed:test (150 prompts)")


@pytest.mark.slow
def test_a_sweep_runs_its_secondary_question_and_refined_level_and_reports_them(tmp_path, monkeypatch):
    import saedetox.experiments.sweep as sweep_mod

    asked = []

    def refined(curves, target, planned, clean):  # the interpolation is tested by hand in test_conditions.py;
        asked.append((list(curves), target, sorted(clean)))  # a tiny random LM's PPL barely moves with push,
        levels = {c: next(r for r in planned if r.curve == c) for c in ("sae-constant", "meandiff")}  # so the
        return [replace(r, name=f"{c}-p0.5", push=0.5, level=0.5) for c, r in levels.items()]  # levels are fixed

    monkeypatch.setattr(sweep_mod, "refined_levels", refined)
    raw = {
        **tiny_world(tmp_path),
        "discovery": {"max_pairs": 40},  # the latents are given; this caps meandiff's contrast pairs
        "evaluation": {"n_prompts": 6, "samples": 1, "max_new_tokens": 4, "batch_size": 6, "clean_texts": 0},
        "runs": [
            {"method": "none"},
            {"method": "prompt"},
            {"method": "sae", "modes": ["constant"], "push": [0.01, 8.0]},
            {"method": "meandiff", "push": [0.1]},  # a method learnt from contrast data, refined too
        ],
        "secondary": SECTION | {"ppl_ratio": 1.1, "n_boot": 100},
        "robustness": {
            "attacks": ["override"],
            "runs": ["none", "sae-constant", "prompt", "meandiff"],
            "primary": "sae-constant",
            "baseline": "prompt",
            "ppl_ratio": 1.1,
            "refine": True,
            "n_boot": 100,
        },
    }
    out = tmp_path / "sweep"
    clean = run_sweep(parse_config(raw), out)
    rb = json.loads((out / "robustness.json").read_text())
    ratios = rb["selection"]["sae-constant"]["ratios"]
    # asked once, after the clean runs, for the curves the section names; its level was run clean and competes
    assert asked == [
        (
            ["sae-constant", "meandiff"],
            1.1,
            ["meandiff-p0.1", "none", "prompt", "sae-constant-p0.01", "sae-constant-p8"],
        )
    ]
    assert json.loads((out / "runs" / "meandiff-p0.5" / "metrics.json").read_text())["config"]["push"] == 0.5
    assert (
        set(ratios) == {"sae-constant-p0.01", "sae-constant-p8", "sae-constant-p0.5"} and "sae-constant-p0.5" in clean
    )
    assert json.loads((out / "runs" / "sae-constant-p0.5" / "metrics.json").read_text())["config"]["push"] == 0.5
    chosen = rb["selection"]["sae-constant"]["run"]
    assert chosen == min(ratios, key=lambda n: abs(ratios[n] - 1.1))
    assert (out / "attacks" / "override" / chosen / "metrics.json").exists()
    sec = json.loads((out / "secondary.json").read_text())
    assert sec["chosen"]["sae-constant"] == chosen  # the secondary level is fixed by the same clean rule
    row = json.loads((out / "secondary" / chosen / "generations.jsonl").read_text().splitlines()[0])
    assert row["prompt"]  # the run scored the mixed prompts, not the sweep's
    assert json.loads((out / "secondary" / "none" / "metrics.json").read_text())["config"]["prompts"] == "mixed:test"
    assert sec["pairs"][0]["a"] == chosen and sec["pairs"][0]["n"] == 6 and sec["k"] == 1
    html = (out / "report.html").read_text()
    md = (out / "report.md").read_text()
    for text in (html, md):
        assert "Secondary question" in text and "Robustness under attack" in text
    again = run_sweep(parse_config(raw), out)  # resumes: nothing is redone, each section written once
    assert again.keys() == clean.keys()
    assert (out / "report.md").read_text().count("## Robustness under attack") == 1
