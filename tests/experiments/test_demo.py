"""The packaged demo config, end to end on the committed reference world, at toy sample sizes."""

from __future__ import annotations

import dataclasses
import json
from importlib.resources import files
from pathlib import Path

import pytest

from saedetox.experiments.config import load_config
from saedetox.experiments.demo import write_answer
from saedetox.experiments.plan import plan
from saedetox.experiments.sweep import run_sweep

CONFIGS = Path(str(files("saedetox") / "configs"))


def test_demo_is_pre_registered_on_the_test_prompts_and_tuned_on_dev():
    demo, dev = load_config(CONFIGS / "demo.yaml"), load_config(CONFIGS / "demo_dev.yaml")
    assert demo.evaluation.prompts == "challenging:test" and dev.evaluation.prompts == "challenging:dev"
    cmp = demo.comparison
    assert cmp is not None and cmp.judge in demo.evaluation.judges and cmp.ppl_ratios == [1.05, 1.10, 1.25]
    planned = plan(demo)
    curves = {r.curve for r in planned if r.curve}
    assert cmp.primary in curves and cmp.primary.startswith("sae-")
    assert {"sae-constant", "sae-conditional", "meandiff", "meandiff-adaptive", "surgery"} <= curves
    assert any(c.startswith("sae-adaptive") for c in curves)
    assert {"none", "prompt", "aura"} <= {r.name for r in planned if r.curve is None}
    for c in curves - {"surgery"}:  # every steering method is a curve over the same effective-push grid
        pushes = sorted(r.push for r in planned if r.curve == c)
        assert 6 <= len(pushes) <= 8 and pushes[0] <= 0.05 and pushes[-1] >= 0.5, c
    caps = [r for r in planned if r.capability]
    assert "none" in {r.name for r in caps} and len(caps) < len(planned) / 4  # lm-eval only where it informs


@pytest.mark.slow
def test_demo_config_runs_end_to_end_and_resumes(tmp_path):
    cfg = load_config(CONFIGS / "demo.yaml")
    cfg.discovery = dataclasses.replace(cfg.discovery, max_pairs=60)
    cfg.evaluation = dataclasses.replace(
        cfg.evaluation, n_prompts=3, samples=2, max_new_tokens=4, clean_texts=2, capability_limit=2
    )
    cfg.secondary = dataclasses.replace(cfg.secondary, n_prompts=3, n_boot=100)
    for g in cfg.runs:  # two levels per curve keep the test short; every curve and point still runs
        g.push = g.push[:1] + g.push[-1:] if len(g.push) > 2 else g.push
    names = [r.name for r in plan(cfg)]
    out = tmp_path / "demo"
    results = run_sweep(cfg, out)
    assert list(results) == names
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics) == names  # docs/metrics.md: runs keyed by name
    for name, res in results.items():
        assert set(res["toxicity"]) == set(cfg.evaluation.judges), name
        assert res["fluency"]["ppl_conditional"] > 0
        if res["config"]["curve"] not in (None, "surgery"):
            assert res["steering"]["effective_push"] > 0, name
    assert results["none"]["capability"]
    feats = json.loads((out / "features.json").read_text())
    assert len(feats["selected"]) == len(feats["thresholds"]) > 0 and "detector" in feats
    # discovery's gate measured on the unsteered run (AUROC for a toxic continuation) and the gated runs only
    gated = {n for n, r in results.items() if n == "none" or r["config"].get("mode") == "conditional"}
    assert gated - {"none"} and {n for n, r in results.items() if r.get("gate")} == gated
    assert all(results[n]["gate"]["latents"] == len(feats["selected"]) for n in gated)
    html = (out / "report.html").read_text()
    assert cfg.comparison is not None and cfg.comparison.primary in html and "data:image/png;base64" in html
    assert html.index("pre-registered") < html.index("Strength curves")  # the answer comes first
    # the demo's machine-readable answer: the numbers the report states, from the same comparison
    ans = write_answer(results, cfg.comparison, out / "answer.json")
    assert json.loads((out / "answer.json").read_text()) == ans and ans["preregistered"]
    assert ans["primary"] == cfg.comparison.primary and [a["ratio"] for a in ans["at_ratio"]] == [1.05, 1.10, 1.25]
    md = (out / "report.md").read_text()
    for a in ans["at_ratio"]:
        if "why" in a:
            assert f"×{a['ratio']:.2f}:** " in md
            continue
        d, (lo, hi) = a["difference"]["est"], a["difference"]["ci"]
        assert f"difference {d:+.3f} [{lo:+.3f}, {hi:+.3f}]" in md
        assert a["relative"]["est"] == pytest.approx(d / a["best_baseline_tox"]["est"])
        assert a["primary_tox"]["est"] - a["best_baseline_tox"]["est"] == pytest.approx(d)
    # the secondary question: its runs on mixed:test at the levels the clean curves fixed, kept in answer.json
    sec = json.loads((out / "secondary.json").read_text())
    assert sec["prompts"] == "mixed:test" and [p["a"] for p in sec["pairs"]][:1] == [sec["chosen"]["sae-conditional"]]
    ans = write_answer(results, cfg.comparison, out / "answer.json", sec)
    assert ans["secondary"]["pairs"] == sec["pairs"] and "not the primary answer" in ans["secondary"]["label"]
    assert "Secondary question" in html and "## Secondary question" in md
    # a restarted sweep redoes nothing: every run's metrics file is left as it was
    stamps = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/metrics.json")}
    run_sweep(cfg, out)
    assert {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/metrics.json")} == stamps


def test_answer_json_keeps_the_secondary_question_apart(tmp_path):
    sec = {"prompts": "mixed:test", "pairs": [{"a": "x", "b": "y", "diff": -0.1}]}
    ans = write_answer({}, None, tmp_path / "answer.json", sec)
    assert json.loads((tmp_path / "answer.json").read_text()) == ans
    assert ans["secondary"]["pairs"] == sec["pairs"] and ans["secondary"]["label"].startswith("secondary question")
    assert "secondary" not in write_answer({}, None, tmp_path / "plain.json")
