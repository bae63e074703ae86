"""The report with per-prompt data: the pre-registered answer first, curves, equal push, paired differences."""

from __future__ import annotations

import json
import re
from pathlib import Path

from saedetox.report.markdown import markdown_summary
from saedetox.report.write import write_report
from synthetic_runs import World, sweep


def _section(html: str, sec: str) -> str:
    m = re.search(rf'<section id="{sec}">(.*?)</section>', html, re.S)
    return "" if m is None else m.group(1)


def test_the_answer_comes_first_and_is_stated_with_paired_cis(tmp_path: Path) -> None:
    runs = sweep(World(n=80))
    cfg = {"ppl_ratios": [1.05, 1.10, 3.0], "primary": "sae-constant", "n_boot": 200}
    html = write_report(runs, tmp_path / "r.html", comparison=cfg).read_text()
    ids = re.findall(r'<section id="(\w+)">', html)
    assert ids[:4] == ["answer", "curves", "push", "tradeoff"] and "paired" in ids
    answer = _section(html, "answer")
    assert "<b>sae-constant</b> (config)" in answer and "k = 5" in answer and "80 prompts" in answer
    assert "best baseline meandiff-constant" in answer and "paired CI half-width" in answer
    assert "never reaches PPL ratio ×3" in answer  # a ratio no curve reaches: n/a, not extrapolated
    assert "Secondary" in answer and "sae-adaptive" in answer  # the other SAE curve, labelled as secondary
    assert "not comparable with papers that use k = 25" in answer
    assert _section(html, "curves").count('src="data:image/png;base64,') == 1
    assert "n/a (reaches ×" in _section(html, "curves")
    assert "Δ vs sae-constant" in _section(html, "push")
    paired = _section(html, "paired")
    assert "sae-adaptive-n0.8" in paired and "PPL ratio" in paired and "sign-flip" in paired
    md = markdown_summary(runs, comparison=cfg)
    assert "**sae-constant** (config)" in md and "### Curves at matched fluency" in md and "push 0.1" in md
    # every table says which p-value it shows and that the CIs are BCa
    assert "p<br>(bootstrap)" in answer and "p<br>(sign-flip)" in paired and "p<br>(bootstrap)" not in paired
    assert "BCa" in answer and "BCa" in paired
    assert "bootstrap p = " in md and "BCa CIs, bootstrap p" in md


def test_only_a_configured_question_is_called_pre_registered(tmp_path: Path) -> None:
    runs = sweep(World(n=40))
    fixed = markdown_summary(runs, comparison={"primary": "sae-constant", "n_boot": 100})
    assert fixed.startswith("## The answer (pre-registered comparison)") and "Question fixed before the runs" in fixed
    adhoc = markdown_summary(runs)  # ad-hoc runs: the report's defaults chose the question
    assert adhoc.startswith("## The comparison at matched fluency") and "not fixed before these runs" in adhoc
    assert "pre-registered" not in adhoc and "fixed before the runs" not in adhoc
    html = write_report(runs, tmp_path / "r.html").read_text()
    assert "pre-registered" not in _section(html, "answer") and "not fixed before these runs" in html


def test_hostile_names_are_escaped_everywhere(tmp_path: Path) -> None:
    runs = sweep(World(n=30))
    evil = "<script>alert(1)</script>"
    for name in [n for n in runs if n.startswith("sae-adaptive")]:
        runs[name]["config"]["curve"] = f"sae-{evil}"
    runs[f"x{evil}"] = runs.pop("prompt")
    html = write_report(runs, tmp_path / "r.html", comparison={"primary": f"sae-{evil}", "n_boot": 100}).read_text()
    assert "<script" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in _section(html, "answer")
    assert "&lt;script&gt;" in _section(html, "curves") and "&lt;script&gt;" in _section(html, "metrics")


def test_old_metrics_without_per_prompt_still_report(tmp_path: Path) -> None:
    runs = sweep(World(n=30))
    for m in runs.values():
        del m["per_prompt"]
        del m["config"]["curve"]
    html = write_report(runs, tmp_path / "r.html").read_text()
    assert "could not be computed" in _section(html, "answer") and "no per-prompt data" in _section(html, "answer")
    assert 'id="curves"' not in html and 'id="paired"' not in html
    assert json.dumps(runs)  # unchanged inputs stay JSON
