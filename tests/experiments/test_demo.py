"""The packaged demo config, end to end on the committed reference world, at toy sample sizes."""

from __future__ import annotations

import dataclasses
import json
from importlib.resources import files
from pathlib import Path

from saedetox.experiments.config import load_config
from saedetox.experiments.plan import plan
from saedetox.experiments.sweep import run_sweep


def test_demo_config_runs_end_to_end_and_resumes(tmp_path):
    cfg = load_config(Path(str(files("saedetox") / "configs" / "demo.yaml")))
    cfg.discovery = dataclasses.replace(cfg.discovery, max_pairs=60)
    cfg.evaluation = dataclasses.replace(
        cfg.evaluation, n_prompts=3, samples=2, max_new_tokens=4, clean_texts=2, capability_limit=2
    )
    names = [r.name for r in plan(cfg)]
    out = tmp_path / "demo"
    results = run_sweep(cfg, out)
    assert list(results) == names
    for mode in ("constant", "conditional", "token"):
        for tier in ("low", "medium", "high"):
            assert f"sae-{mode}-{tier}" in results
    for base in ("none", "prompt", "meandiff-medium", "aura", "surgery-medium"):
        assert base in results
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics) == names  # docs/metrics.md: runs keyed by name
    for name, res in results.items():
        assert set(res["toxicity"]) == {"profanity", "probe"}, name
        assert res["fluency"]["ppl_conditional"] > 0
    assert results["none"]["capability"] and results["sae-constant-medium"]["capability"]
    feats = json.loads((out / "features.json").read_text())
    assert len(feats["selected"]) == len(feats["thresholds"]) > 0
    html = (out / "report.html").read_text()
    assert "sae-constant-medium" in html and "data:image/png;base64" in html
    # a restarted sweep redoes nothing: every run's metrics file is left as it was
    stamps = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/metrics.json")}
    run_sweep(cfg, out)
    assert {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/metrics.json")} == stamps
