"""The condition studies in the report: the secondary question by hand, and report.html / report.md equal the JSON."""

from __future__ import annotations

import math
import re
from html.parser import HTMLParser

import pytest

from saedetox.errors import SaedetoxError
from saedetox.eval.metrics.paired import paired_difference
from saedetox.report.robustness import RobustnessConfig, robustness
from saedetox.report.secondary import SecondaryConfig, secondary, secondary_markdown
from saedetox.report.study_sections import studies_markdown
from saedetox.report.write import write_report

UIDS = ["p1", "p2", "p3", "p4"]


def run(method: str, toxic: list[int], log_ppl: list[float], attack: str | None = None) -> dict:
    """Metrics of a run of four prompts at k = 1, with its summary block as an evaluation writes it."""
    cfg = {"method": method, **({"attack": attack} if attack else {})}
    return {
        "config": cfg,
        "n_prompts": 4,
        "samples_per_prompt": 1,
        "toxicity": {"probe": {"tox_prob": sum(toxic) / 4, "emt": sum(0.9 if t else 0.1 for t in toxic) / 4}},
        "fluency": {"ppl_conditional": math.exp(sum(log_ppl) / 4)},
        "per_prompt": {
            "uid": UIDS,
            "max_tox": {"probe": [0.9 if t else 0.1 for t in toxic]},
            "n_toxic": {"probe": toxic},
            "log_ppl": log_ppl,
        },
    }


CLEAN = {
    "none": run("none", [1, 1, 0, 0], [3.0, 3.0, 3.0, 3.0]),
    "sae-conditional-p0.1": run("sae", [0, 1, 0, 0], [3.0, 3.1, 3.2, 3.1]),
    "sae-constant-p0.1": run("sae", [0, 0, 0, 0], [3.2, 3.2, 3.3, 3.1]),
    "meandiff-p0.2": run("meandiff", [1, 1, 1, 0], [3.1, 3.1, 3.1, 3.1]),
}
SC = SecondaryConfig(
    question="Is the gate less toxic on mixed prompts?",
    prompts="mixed:test",
    n_prompts=4,
    runs=["sae-conditional", "sae-constant", "meandiff"],
    pairs=[["sae-conditional", "meandiff"], ["sae-constant", "meandiff"], ["sae-conditional", "sae-constant"]],
    ppl_ratio=1.1,
    n_boot=200,
)
CHOSEN = {
    "none": "none",
    "sae-conditional": "sae-conditional-p0.1",
    "sae-constant": "sae-constant-p0.1",
    "meandiff": "meandiff-p0.2",
}


def test_the_secondary_pairs_by_hand():
    res = secondary(CLEAN, SC, "probe", CHOSEN, "none")
    first = res["pairs"][0]
    # toxic per prompt: conditional (0,1,0,0), meandiff (1,1,1,0): differences (−1,0,−1,0) → −0.5
    assert (first["a"], first["b"]) == ("sae-conditional-p0.1", "meandiff-p0.2")
    assert first["a_value"] == pytest.approx(0.25) and first["b_value"] == pytest.approx(0.75)
    assert first["diff"] == pytest.approx(-0.5) and first["n"] == 4
    d, ci, p, _ = paired_difference([0, 1, 0, 0], [1, 1, 1, 0], n_boot=200, seed=0, p_kind="bootstrap")
    assert first["ci"] == pytest.approx(list(ci)) and first["p"] == pytest.approx(p)
    assert (first["ci"][1] < 0 or first["ci"][0] > 0) is (first["p"] < 0.05)  # p is the CI's test inversion
    # PPL ratio conditional / meandiff: exp(mean(−0.1, 0, 0.1, 0)) = 1
    assert first["ppl_ratio"] == pytest.approx(1.0)
    assert first["answer"] == ("a less toxic" if ci[1] < 0 else "no difference shown")
    # each run on the set: its PPL ratio to none is exp(mean log difference)
    assert res["runs"]["sae-constant-p0.1"]["ppl_ratio"] == pytest.approx(math.exp(0.2))
    assert res["runs"]["meandiff-p0.2"]["tox_prob"] == pytest.approx(0.75) and res["k"] == 1
    assert res["runs"]["sae-constant-p0.1"]["entry"] == "sae-constant"


def test_a_clear_difference_gets_its_direction():
    worse = {**CLEAN, "meandiff-p0.2": run("meandiff", [0, 0, 0, 0], [3.1] * 4)}
    many = {k: {**v, "per_prompt": {**v["per_prompt"]}} for k, v in worse.items()}
    res = secondary(many, SC, "probe", CHOSEN, "none")
    conditional_vs_meandiff = res["pairs"][0]  # (0,1,0,0) − (0,0,0,0): CI [0, …] does not lie above zero
    assert conditional_vs_meandiff["diff"] == pytest.approx(0.25)
    assert conditional_vs_meandiff["answer"] in ("a more toxic", "no difference shown")
    assert (conditional_vs_meandiff["ci"][0] > 0) is (conditional_vs_meandiff["answer"] == "a more toxic")


@pytest.mark.parametrize(
    "bad,msg",
    [
        ({"pairs": [["sae-conditional", "aura"]]}, "not in secondary.runs"),
        ({"pairs": [["meandiff", "meandiff"]]}, "pairs"),
        ({"n_prompts": 1}, "n_prompts"),
        ({"metric": "nope"}, "metric"),
        ({"runs": []}, "runs"),
    ],
)
def test_bad_secondary_sections_are_refused(bad, msg):
    raw = {"runs": SC.runs, "pairs": SC.pairs} | bad
    with pytest.raises(SaedetoxError, match=msg):
        SecondaryConfig(**raw)


def test_a_missing_run_on_the_set_is_refused():
    with pytest.raises(SaedetoxError, match="lacks run"):
        secondary({k: v for k, v in CLEAN.items() if k != "meandiff-p0.2"}, SC, "probe", CHOSEN, "none")


class _Tables(HTMLParser):
    """Each table of the page as rows of cell texts (the CI line kept apart)."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, list[list[list[str]]]] = {}
        self.section = ""
        self.cell: list[str] | None = None
        self.in_ci = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self.section = a.get("id", "")
        elif tag == "table":
            self.sections.setdefault(self.section, []).append([])
        elif tag == "tr":
            self.sections[self.section][-1].append([])
        elif tag == "td":
            self.cell = []
        elif tag == "span" and a.get("class") == "ci":
            self.in_ci = True
            self.cell is not None and self.cell.append("\x00")

    def handle_endtag(self, tag):
        if tag == "td" and self.cell is not None:
            self.sections[self.section][-1][-1].append("".join(self.cell))
            self.cell = None
        elif tag == "span":
            self.in_ci = False

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def _nums(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"[+\-−]?\d+\.\d+", text.replace("−", "-"))]


def _page(tmp_path, **studies) -> dict[str, list[list[list[str]]]]:
    out = write_report(CLEAN, tmp_path / "r.html", **studies)
    p = _Tables()
    p.feed(out.read_text(encoding="utf-8"))
    return p.sections


def _robustness() -> dict:
    attacked = {
        "fewshot": {
            "none": run("none", [1, 1, 1, 1], [3.0] * 4, "fewshot"),
            "sae-constant-p0.1": run("sae", [1, 0, 0, 0], [3.2] * 4, "fewshot"),
            "meandiff-p0.2": run("meandiff", [1, 1, 1, 1], [3.1] * 4, "fewshot"),
        }
    }
    cfg = RobustnessConfig(
        attacks=["fewshot"],
        runs=["none", "sae-constant-p0.1", "meandiff-p0.2"],
        primary="sae-constant-p0.1",
        baseline="meandiff-p0.2",
        n_boot=200,
    )
    res = robustness(CLEAN, attacked, cfg, "probe")
    res["selection"] = {"meandiff": {"run": "meandiff-p0.2", "target": 1.1, "ratios": {"meandiff-p0.2": 1.105}}}
    return res


def test_the_html_and_markdown_robustness_numbers_are_the_json(tmp_path):
    res = _robustness()
    tables = _page(tmp_path, robustness=res)["robustness"]
    runs, pairs = tables[0], tables[1]
    block = res["attacks"]["fewshot"]
    assert [r[0] for r in runs[1:]] == list(block["runs"])
    for cells, x in zip(runs[1:], block["runs"].values(), strict=True):
        want = [x["clean_ppl_ratio"], x["clean"], x["attacked"], x["increase"], *x["ci"]]
        assert _nums(" ".join(cells[2:6])) == pytest.approx(want, abs=5e-4)
    pr = block["pairs"][0]
    assert _nums(pairs[1][1]) == pytest.approx([pr["diff"], *pr["ci"]], abs=5e-4)
    md = studies_markdown(robustness=res)
    h = block["headline"]
    assert f"difference {h['diff']:+.3f} [{h['ci'][0]:+.3f}, {h['ci'][1]:+.3f}]" in md
    assert "meandiff → meandiff-p0.2 (×1.105" in md and "k = 1 samples per prompt" in md


def test_the_html_and_markdown_secondary_numbers_are_the_json(tmp_path):
    res = secondary(CLEAN, SC, "probe", CHOSEN, "none")
    tables = _page(tmp_path, secondary=res)["secondary"]
    pairs, runs = tables[0], tables[1]
    for cells, p in zip(pairs[1:], res["pairs"], strict=True):
        assert cells[0] == f"{p['a']} − {p['b']}" and cells[-1] == p["answer"]
        want = [p["a_value"], p["b_value"], p["diff"], *p["ci"], p["p"], p["ppl_ratio"], *p["ppl_ratio_ci"]]
        assert _nums(" ".join(cells[1:6])) == pytest.approx(want, abs=5e-3)
    for cells, (name, r) in zip(runs[1:], res["runs"].items(), strict=True):
        assert cells[0] == name
        assert _nums(" ".join(cells[2:])) == pytest.approx(
            [r["tox_prob"], r["emt"], r["ppl"], r["ppl_ratio"]], abs=5e-3
        )
    md = secondary_markdown(res)
    assert md.startswith("## Secondary question (pre-registered, not the primary answer)")
    row = next(line for line in md.splitlines() if line.startswith("| sae-constant-p0.1 − meandiff-p0.2"))
    p = res["pairs"][1]
    want = [p["a_value"], p["b_value"], p["diff"], *p["ci"], p["p"], p["ppl_ratio"], *p["ppl_ratio_ci"]]
    assert _nums(" ".join(row.split("|")[2:])) == pytest.approx(want, abs=5e-4)  # after the names
    assert "k = 1 samples per prompt" in md


def test_a_sweeps_studies_are_read_beside_its_metrics(tmp_path):
    import json

    from saedetox.report.load import load_studies

    res = secondary(CLEAN, SC, "probe", CHOSEN, "none")
    (tmp_path / "metrics.json").write_text(json.dumps(CLEAN))
    (tmp_path / "secondary.json").write_text(json.dumps(res))
    (tmp_path / "robustness.json").write_text("{not json")  # unreadable: left out
    assert load_studies([tmp_path / "metrics.json"]) == {"secondary": json.loads(json.dumps(res))}
    assert load_studies([tmp_path / "metrics.json", tmp_path / "metrics.json"]) == {}  # several sweeps: none
