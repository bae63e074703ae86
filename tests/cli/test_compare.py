"""``saedetox compare`` and ``saedetox report`` on two tiny real runs (tiny random model, offline)."""

from __future__ import annotations

import json

import pytest

from helpers import run_cli as run
from saedetox.eval.config import EvalConfig
from saedetox.eval.run import evaluate
from saedetox.methods.registry import build_method
from saedetox.steering.spec import Intervention, SteeringSpec


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, gpt2, sae_dir):
    root = tmp_path_factory.mktemp("cmp")
    cfg = EvalConfig(n_prompts=8, samples=3, max_new_tokens=6, batch_size=12, judges=("profanity", "probe"))
    cfg.clean_texts, cfg.n_boot = 0, 50
    evaluate(gpt2, root / "none", cfg)
    spec = SteeringSpec([Intervention(sae=str(sae_dir), latents=[1, 2, 3], strength=40.0)])
    evaluate(gpt2, root / "steered", cfg, build_method(gpt2, "sae", spec))
    return root


def test_compare_two_real_runs(two_runs, capsys):
    code, out, err = run(["compare", str(two_runs / "steered"), str(two_runs / "none"), "--n-boot", "200"], capsys)
    assert code == 0, err
    assert out.startswith("A = steered, B = none · judge profanity · k = 3") and "8 prompts" in out
    assert "toxicity probability" in out and "mean log cond. PPL" in out and "PPL ratio A / B" in out
    code, out, err = run(
        ["compare", str(two_runs / "steered" / "metrics.json"), str(two_runs / "none"), "--judge", "probe", "--json"],
        capsys,
    )
    assert code == 0, err
    res = json.loads(out)
    assert (
        res["judge"] == "probe"
        and res["k"] == 3
        and [d["metric"] for d in res["differences"]]
        == [
            "tox_prob",
            "emt",
            "log_ppl",
        ]
    )
    lp = res["differences"][2]
    assert lp["n"] == 8 and lp["ci"][0] <= lp["diff"] <= lp["ci"][1]


def test_compare_bad_input_is_one_line(two_runs, capsys, tmp_path):
    code, out, err = run(["compare", str(two_runs / "none"), str(tmp_path / "nope")], capsys)
    assert code == 2 and err.count("\n") == 1 and "not found" in err
    code, out, err = run(["compare", str(two_runs / "none"), str(two_runs / "steered"), "--judge", "zz"], capsys)
    assert code == 2 and err.startswith("error: Judge 'zz'") and err.count("\n") == 1
    old = json.loads((two_runs / "none" / "metrics.json").read_text())
    del old["per_prompt"]
    (tmp_path / "old.json").write_text(json.dumps(old))
    code, out, err = run(["compare", str(tmp_path / "old.json"), str(two_runs / "none")], capsys)
    assert code == 2 and "no per-prompt data" in err and err.count("\n") == 1


def test_report_on_old_and_new_metrics(two_runs, capsys, tmp_path):
    old = json.loads((two_runs / "steered" / "metrics.json").read_text())
    del old["per_prompt"]
    old["capability"] = {"lambada": 0.3, "lambada_ppl": 40.0}
    old["config"]["run"] = "old-steered"
    (tmp_path / "old.json").write_text(json.dumps(old))
    sweep_dir = tmp_path / "sw"
    sweep_dir.mkdir()
    runs = {n: json.loads((two_runs / n / "metrics.json").read_text()) for n in ("none", "steered")}
    (sweep_dir / "metrics.json").write_text(json.dumps(runs))
    (sweep_dir / "manifest.json").write_text(json.dumps({"config": {"comparison": {"ppl_ratios": [1.5]}}}))
    out_html = tmp_path / "r.html"
    argv = ["report", str(sweep_dir / "metrics.json"), str(tmp_path / "old.json"), "--out", str(out_html)]
    code, out, err = run(argv, capsys)
    assert code == 0, err
    html = out_html.read_text()
    assert "old-steered" in html and "×1.5" in html  # the sweep's pre-registered ratio, from its manifest
    assert "k = 3" in html and out_html.with_suffix(".md").exists()
