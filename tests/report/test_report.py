"""The HTML report and markdown summary: self-contained, escaped, robust to missing sections."""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

from saedetox.errors import SaedetoxError
from saedetox.eval.result import RunResult
from saedetox.report.analysis import pareto_front
from saedetox.report.load import load_runs
from saedetox.report.markdown import markdown_summary, write_markdown
from saedetox.report.write import write_report

JUDGES = ("profanity", "tiny-judge")


def _run(method: str, tp: float, ppl: float, mode: str | None = None, tier: str | None = None, **extra: Any) -> dict:
    tox = {
        j: {
            "emt": tp * 0.8 + k * 0.01,
            "emt_std": 0.1,
            "emt_ci": [tp * 0.8 - 0.02, tp * 0.8 + 0.02],
            "tox_prob": round(tp + k * 0.05, 4),
            "tox_prob_ci": [tp - 0.05, tp + 0.05],
            "mean": tp / 3,
            "by_prompt_toxicity": {
                "toxic": {"emt": 0.7, "tox_prob": tp + 0.1},
                "nontoxic": {"emt": 0.2, "tox_prob": tp - 0.1},
            },
        }
        for k, j in enumerate(JUDGES)
    }
    m = {
        "config": {"method": method, "mode": mode, "tier": tier, "alpha": 2.5 if tier else None, "model": "ref-lm"},
        "versions": {"saedetox": "0.1.0"},
        "n_prompts": 100,
        "samples_per_prompt": 5,
        "toxicity": tox,
        "fluency": {"ppl_conditional": ppl, "ppl_ci": [ppl - 0.5, ppl + 0.6], "ppl_clean": ppl * 2, "n_dropped": 0},
        "diversity": {"dist1": 0.5, "dist2": 0.8, "dist3": 0.9},
        "capability": {"arc_easy": 0.40, "hellaswag": 0.30},
        "judge_agreement": {"profanity~tiny-judge": {"pearson": 0.7, "spearman": 0.6, "cohen_kappa": 0.5, "n": 500}},
        "wall_seconds": 12.0,
    }
    m["per_prompt"] = _per_prompt([math.log(ppl) + o for o in OFFSETS], tp)
    m.update(extra)
    return m


OFFSETS = (0.0, 0.1, -0.1, 0.2)  # the same in every run: each run's paired PPL ratio to none is ppl / 12


def _per_prompt(log_ppl: list[float], tp: float) -> dict:
    return {
        "uid": [f"p{i}" for i in range(len(log_ppl))],
        "max_tox": {j: [tp] * len(log_ppl) for j in JUDGES},
        "n_toxic": {j: [1, 1, 0, 0][: len(log_ppl)] for j in JUDGES},
        "log_ppl": log_ppl,
    }


def _runs() -> dict[str, dict]:
    runs = {
        "none": _run("none", 0.80, 12.0),
        "sae-constant-medium": _run("sae", 0.40, 14.0, "constant", "medium"),
        "sae-token-low": _run("sae", 0.70, 12.5, "token", "low"),
        "prompt": _run("prompt", 0.78, 12.2),
        "meandiff-high": _run("meandiff", 0.45, 19.0, tier="high"),  # dominated by sae-constant-medium
        "aura": _run("aura", 0.60, 13.0),
    }
    runs["aura"]["capability"] = {"arc_easy": 0.38, "hellaswag": 0.31}
    del runs["prompt"]["diversity"]  # a missing section
    del runs["prompt"]["capability"]
    return runs


FEATURES = {
    "model": "ref-lm",
    "sae": "saes/w1024",
    "hook": "blocks.3.hook_resid_pre",
    "method": "paired",
    "selected": [17, 42],
    "set_test_auroc": 0.874,
    "set_test_auroc_sum": 0.801,
    "splits": {"rank": {"toxic": 3000, "clean": 3000}, "select": {"toxic": 1188, "clean": 1188}},
    "features": [
        {
            "index": 17,
            "scores": {"paired": 1.5, "meandiff": 0.9},
            "select_auroc": 0.93,
            "test_auroc": 0.91,
            "top_tokens": [{"token": " idiot", "context": "you <script>alert(1)</script> idiot", "act": 3.2}],
            "neuronpedia": "https://neuronpedia.org/x/17",
        },
        {"index": 42, "scores": {}, "test_auroc": None, "top_tokens": [], "neuronpedia": None},
    ],
}

SPLITTING = {
    "judge": "profanity",
    "rows": [
        {
            "width": w,
            "sae": f"w{w}",
            "mode": "constant",
            "tier": "medium",
            "tox_prob": tp,
            "tox_prob_none": 0.8,
            "ppl": 14.0,
            "ppl_none": 12.0,
            "latents_for_coverage": c,
            "coverage_target": 0.8,
            "set_test_auroc": 0.9,
        }
        for w, tp, c in ((1024, 0.4, 5), (2048, 0.5, 9), (4096, 0.6, 15))
    ],
    "conclusion": "The cut weakens as the SAE widens <b>.",
}


def _pngs(html: str, section: str) -> int:
    m = re.search(rf'<section id="{section}">(.*?)</section>', html, re.S)
    return 0 if m is None else m.group(1).count('src="data:image/png;base64,')


def test_report_full(tmp_path: Path) -> None:
    runs = _runs()
    manifest = {"seed": 0, "data": {"rtp.jsonl": "ab" * 32}}
    out = write_report(runs, tmp_path / "r.html", features=FEATURES, splitting=SPLITTING, manifest=manifest)
    html = out.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]  # atomic write leaves no temp file
    assert 'src="http' not in html and "<link" not in html and "<script" not in html
    assert _pngs(html, "tradeoff") == 2  # primary judge large, the other judge below
    for sec in ("capability", "splitting"):
        assert _pngs(html, sec) == 1, sec
    for name in runs:
        assert name in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;." in html  # splitting conclusion escaped
    assert 'href="https://neuronpedia.org/x/17"' in html
    # AUROCs are labelled by the split they were measured on: the test split reports, select chose
    assert "test AUROC of the selected set: 0.874" in html and "0.801" in html and "select 1188/1188" in html
    assert "held-out" not in html.lower()
    assert "<details" in html and "&#34;seed&#34;: 0" in html
    # Pareto-optimal rows: none, prompt, sae-token-low, aura, sae-constant-medium; meandiff-high is dominated
    metrics = re.search(r'<section id="metrics">(.*?)<h3>', html, re.S).group(1)
    rows = {n: c for c, n in re.findall(r'<tr class="(\w*)"><td class="l">(?:★ )?([\w-]+)</td>', metrics)}
    assert rows["sae-constant-medium"] == "pareto" and rows["none"] == "base" and rows["meandiff-high"] == ""
    # no after-the-fact headline: the answer section is the comparison at matched fluency
    assert 'id="headline"' not in html and "Best run" not in html
    assert re.findall(r'<section id="(\w+)">', html)[0] == "answer"
    assert "By prompt toxicity" in html
    # k is stated in every toxicity header; the effective push has its column
    assert "tox. prob (k = 5)" in metrics and "EMT (k = 5)" in metrics and "eff.<br>push" in metrics
    assert "k = 5 samples" in html


def test_report_omits_missing_sections(tmp_path: Path) -> None:
    runs = {
        "none": {"toxicity": {"j": {"tox_prob": 0.5}}, "fluency": {"ppl_conditional": 10.0}},
        "sae-constant-high": {"toxicity": {"j": {"tox_prob": 0.2, "emt": None}}, "fluency": {"ppl_conditional": None}},
        "w2048-sae-constant-high": {"toxicity": {"j": {}}, "fluency": {}, "capability": None, "diversity": []},
    }
    html = write_report(runs, tmp_path / "r.html").read_text()
    for sec in ("capability", "agreement", "features", "splitting", "manifest"):
        assert f'id="{sec}"' not in html, sec
    assert _pngs(html, "tradeoff") == 0  # no per-prompt data: no paired PPL ratio to place a run by
    assert "w2048-sae-constant-high" in html and "–" in html
    assert "By prompt toxicity" not in html


def test_report_without_baseline_and_bad_judge(tmp_path: Path) -> None:
    runs = {"aura": _run("aura", 0.6, 13.0)}
    html = write_report(runs, tmp_path / "r.html", baseline="none", primary_judge="tiny-judge").read_text()
    assert "No &#39;none&#39; run to anchor the curves" in html
    with pytest.raises(SaedetoxError, match="Judge 'nope'"):
        write_report(runs, tmp_path / "r2.html", primary_judge="nope")
    with pytest.raises(SaedetoxError):
        write_report({}, tmp_path / "r3.html")


def test_pareto_front() -> None:
    pts = [(1.0, 5.0), (2.0, 3.0), (3.0, 3.0), (4.0, 1.0), (2.5, 4.0), (None, 0.0), (float("nan"), 0.0), (1.0, 5.0)]
    # (3,3) is dominated by (2,3); (2.5,4) by (2,3); exact duplicates (1,5) both stay
    assert pareto_front(pts) == [0, 7, 1, 3]
    assert pareto_front([]) == []
    assert pareto_front([(1, 1)]) == [0]


def test_markdown_summary() -> None:
    runs = _runs()
    md = markdown_summary(runs, splitting=SPLITTING)
    lines = md.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("| run |"))
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    assert header[:9] == [
        "run",
        "method",
        "mode",
        "tier",
        "α",
        "eff. push",
        "tox. prob (profanity, k = 5)",
        "Δ% (profanity)",
        "EMT (profanity, k = 5)",
    ]
    body = lines[start + 2 : start + 8]
    rows = {r[0].rstrip(" ★"): r for r in ([c.strip() for c in ln.strip("|").split("|")] for ln in body)}
    assert set(rows) == set(runs)
    col = {h: i for i, h in enumerate(header)}
    r = rows["sae-constant-medium"]
    assert r[col["method"]] == "sae" and r[col["mode"]] == "constant" and r[col["tier"]] == "medium"
    assert r[col["α"]] == "2.5"
    assert r[col["tox. prob (profanity, k = 5)"]] == "0.400"
    assert r[col["Δ% (profanity)"]] == "-50.0%"  # 0.40 / 0.80 - 1
    assert r[col["Δ% (tiny-judge)"]] == "-47.1%"  # 0.45 / 0.85 - 1 = -0.4706
    assert r[col["cond. PPL"]] == "14.00" and r[col["Δ% PPL (paired)"]] == "+16.7%"  # 14 / 12 - 1
    assert r[col["dist-2"]] == "0.800" and r[col["capability (mean acc.)"]] == "0.350"
    assert rows["none"][col["Δ% PPL (paired)"]] == "–"
    assert rows["prompt"][col["dist-2"]] == "–" and rows["prompt"][col["capability (mean acc.)"]] == "–"
    assert rows["meandiff-high"][0] == "meandiff-high"  # not starred: dominated
    assert rows["sae-constant-medium"][0].endswith("★")
    assert "Feature splitting: The cut weakens" in md
    assert "not comparable with papers that use k = 25" in md
    assert md.startswith("## The comparison at matched fluency")  # no config: the report's defaults


def test_ppl_delta_and_pareto_marks_follow_the_paired_ratio(tmp_path: Path) -> None:
    """One outlier continuation moves the mean of per-continuation PPLs, not the paired per-prompt ratio."""
    base = [math.log(10.0), math.log(20.0), math.log(30.0), math.log(40.0)]
    runs = {
        # the unsteered run's mean PPL is inflated by one outlier; per prompt it is the fluent one
        "none": _run("none", 0.80, 900.0, per_prompt=_per_prompt(base, 0.8)),
        # lower mean PPL than none (unpaired: -97%), but every prompt 10% less fluent: ratio ×1.1
        "sae-a": _run(
            "sae", 0.80, 25.0, "constant", "low", per_prompt=_per_prompt([v + math.log(1.1) for v in base], 0.8)
        ),
        # less toxic, per prompt ×0.98 and ×1.02 alternately: geometric mean exactly 0.9998
        "sae-b": _run(
            "sae",
            0.50,
            1000.0,
            "constant",
            "high",
            per_prompt=_per_prompt([v + math.log(f) for v, f in zip(base, (0.98, 1.02, 0.98, 1.02), strict=True)], 0.5),
        ),
    }
    ratio_b = math.exp((2 * math.log(0.98) + 2 * math.log(1.02)) / 4)  # the independent computation
    md = markdown_summary(runs)
    lines = md.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("| run |"))
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    col = {h: i for i, h in enumerate(header)}
    rows = {r[0]: r for r in ([c.strip() for c in ln.strip("|").split("|")] for ln in lines[start + 2 : start + 5])}
    assert rows["sae-a"][col["Δ% PPL (paired)"]] == "+10.0%"
    assert rows["sae-b ★"][col["Δ% PPL (paired)"]] == f"{(ratio_b - 1) * 100:+.1f}%"
    # Pareto on (paired ratio, tox): none (1.0, 0.8) dominates sae-a (1.1, 0.8); sae-b (0.9998, 0.5) dominates both
    assert set(rows) == {"none", "sae-a", "sae-b ★"}
    assert "mean over continuations of each continuation's perplexity" in md
    html = write_report(runs, tmp_path / "r.html").read_text()
    metrics = re.search(r'<section id="metrics">(.*?)</section>', html, re.S).group(1)
    assert "★ sae-b" in metrics and "★ none" not in metrics and "★ sae-a" not in metrics


def test_write_markdown(tmp_path: Path) -> None:
    p = write_markdown(_runs(), tmp_path / "r.md", baseline="none")
    assert p.read_text().startswith("## The comparison at matched fluency")


def test_load_runs(tmp_path: Path) -> None:
    single = _run("sae", 0.4, 14.0, "constant", "medium")
    (tmp_path / "sae-constant-medium").mkdir()
    (tmp_path / "sae-constant-medium" / "metrics.json").write_text(json.dumps(single))
    named = _run("none", 0.8, 12.0)
    named["config"]["run"] = "none"
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "metrics.json").write_text(json.dumps(named))
    sweep = {"aura": _run("aura", 0.6, 13.0), "none": named, "note": "not a run"}
    (tmp_path / "sweep.json").write_text(json.dumps(sweep))
    runs = load_runs([tmp_path / "sae-constant-medium" / "metrics.json", tmp_path / "x", tmp_path / "sweep.json"])
    assert list(runs) == ["sae-constant-medium", "none", "aura", f"{tmp_path.name}/none"]
    assert runs["aura"]["config"]["method"] == "aura"
    assert all(isinstance(m, RunResult) for m in runs.values())  # read through the eval's typed result
    assert runs["sae-constant-medium"].path == tmp_path / "sae-constant-medium" and runs["aura"].path is None
    assert runs["none"].config_value("run") == "none" and runs["aura"].toxicity_value("tiny-judge", "tox_prob") == 0.65


@pytest.mark.parametrize("content", [None, "{not json", "[1, 2]", '{"note": "no runs"}'])
def test_load_runs_bad_file(tmp_path: Path, content: str | None) -> None:
    p = tmp_path / "metrics.json"
    if content is not None:
        p.write_text(content)
    with pytest.raises(SaedetoxError) as e:
        load_runs([p])
    assert "\n" not in str(e.value) and "metrics" in str(e.value)


def test_capability_mean_averages_accuracies_only(tmp_path: Path) -> None:
    from saedetox.report.format import capability_acc, capability_mean, capability_ppl

    old = {"capability": {"lambada": 0.30, "lambada_ppl": 40.0, "piqa": 0.60, "copa": 0.55}}  # pre-split files
    new = {"capability": {"lambada": 0.30, "piqa": 0.60, "copa": 0.55}, "capability_ppl": {"lambada": 40.0}}
    for m in (old, new):
        assert capability_mean(m) == pytest.approx((0.30 + 0.60 + 0.55) / 3)  # was 10.36 with the PPL mixed in
        assert capability_acc(m) == new["capability"] and capability_ppl(m) == {"lambada": 40.0}
    runs = {
        "none": _run("none", 0.8, 12.0, capability=dict(new["capability"]), capability_ppl={"lambada": 40.0}),
        "sae-constant-medium": _run("sae", 0.4, 14.0, "constant", "medium", **old),
    }
    md = markdown_summary(runs)
    assert "| lambada PPL |" in md and "0.483" in md and "10.36" not in md
    html = write_report(runs, tmp_path / "r.html").read_text()
    cap = re.search(r'<section id="capability">(.*?)</section>', html, re.S).group(1)
    assert "lambada<br>PPL" in cap and "40.00" in cap and "0.483" in cap and "lambada_ppl" not in cap


def test_k_is_stated_and_compared_with_the_literature(tmp_path: Path) -> None:
    from saedetox.report.format import k_label, k_note

    assert k_note(25) == "" and "k = 5" in k_note(5) and "k = 25" in k_note(5)
    runs = _runs()
    runs["aura"]["samples_per_prompt"] = 25
    assert k_label(runs) == "k = 5, 25 (per run)"
    html = write_report(runs, tmp_path / "r.html").read_text()
    metrics = re.search(r'<section id="metrics">(.*?)</section>', html, re.S).group(1)
    assert "tox. prob (k = 5, 25 (per run))" in metrics and ">k</th>" in metrics
    md = markdown_summary(runs)
    assert "numbers at k = 5 are not comparable" in md
    at25 = {n: {**m, "samples_per_prompt": 25} for n, m in _runs().items()}
    assert "not comparable" not in markdown_summary(at25) and "k = 25" in markdown_summary(at25)


def test_features_section_shows_specificity_and_gate(tmp_path: Path) -> None:
    feats = copy.deepcopy(FEATURES)
    feats["features"][0].update(clean_open=0.0312, output_effect=0.2468)
    feats["gate"] = {
        "calibration": "joint",
        "rate": 0.05,
        "test_false_open": 0.0476,
        "test_windows": 450,
        "window_words": 30,
        "test_false_open_quantile_gates": 0.8123,
        "detector_test_false_open": 0.051,
    }
    html = write_report(_runs(), tmp_path / "r.html", features=feats).read_text()
    section = html.split('<section id="features">')[1].split("</section>")[0]
    for text in ("clean open", "output effect", "0.031", "0.247", "450", "30 words", "0.812", "0.051"):
        assert text in section, text
    plain = write_report(_runs(), tmp_path / "p.html", features=FEATURES).read_text()
    section = plain.split('<section id="features">')[1].split("</section>")[0]
    assert "clean open" not in section and "gate:" not in section


def test_features_section_states_k_and_the_select_split_choice(tmp_path: Path) -> None:
    feats = copy.deepcopy(FEATURES)
    feats["k"] = 40
    feats["k_choice"] = {
        "chosen": 40,
        "grid": [5, 10, 20, 40],
        "select_auroc": {"5": 0.74005, "10": 0.79328, "20": 0.84949, "40": 0.96267},
        "n_latents": {"5": 5, "10": 10, "20": 20, "40": 37},
    }
    html = write_report(_runs(), tmp_path / "r.html", features=feats).read_text()
    section = html.split('<section id="features">')[1].split("</section>")[0]
    assert "k = 40 chosen on the select split" in section
    for k, auc in feats["k_choice"]["select_auroc"].items():
        assert f"k = {k}: {auc:.3f}" in section
    plain = write_report(_runs(), tmp_path / "p.html", features={**FEATURES, "k": 20}).read_text()
    assert "k = 20 latents" in plain and "chosen on the select split" not in plain
