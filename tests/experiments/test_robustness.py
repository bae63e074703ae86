"""A sweep's robustness section: validation, the levels chosen from clean runs, and a small sweep end to end."""

from __future__ import annotations

import json
import math
from importlib.resources import files

import pytest

from helpers import tiny_world
from saedetox.errors import SaedetoxError
from saedetox.experiments.config import load_config, parse_config
from saedetox.experiments.plan import plan
from saedetox.experiments.robustness import attacked_runs, select_levels
from saedetox.experiments.sweep import dry_run, run_sweep

RUNS = [
    {"method": "none"},
    {"method": "prompt"},
    {"method": "sae", "modes": ["conditional"], "push": [0.1, 0.2]},
    {"method": "meandiff", "modes": ["constant"], "push": [0.1, 0.2]},
]
SECTION = {"runs": ["none", "prompt", "sae-conditional", "meandiff"], "primary": "sae-conditional"}
BASE = {"features": [1, 2], "runs": RUNS, "robustness": SECTION | {"baseline": "meandiff", "ppl_ratio": 1.1}}


def test_the_packaged_config_passes_a_dry_run():
    cfg = load_config(files("saedetox") / "configs" / "robustness.yaml")
    lines = dry_run(cfg)
    assert cfg.robustness is not None and cfg.robustness.attacks == ["fewshot", "override", "dialogue"]
    assert lines[-1].startswith("robustness: 7 runs under fewshot, override, dialogue; sae-constant vs meandiff")
    assert cfg.robustness.refine and cfg.robustness.ppl_ratio == 1.10
    # the two levels per curve where an earlier run of this config measured clean ratios either side of x1.10,
    # and one below them
    grids = {"sae-conditional": [0.025, 0.05, 0.1], "sae-constant": [0.05, 0.1, 0.2], "meandiff": [0.05, 0.1, 0.2]}
    assert {c: [r.push for r in plan(cfg) if r.curve == c] for c in grids} == grids


@pytest.mark.parametrize(
    "section,msg",
    [
        (SECTION | {"baseline": "meandiff"}, "robustness.ppl_ratio"),  # curves need a ratio
        (SECTION | {"baseline": "prompt", "primary": "meandiff", "ppl_ratio": 1.1}, "primary must be a sae run"),
        (SECTION | {"baseline": "none", "ppl_ratio": 1.1}, "baseline must be a baseline run"),
        ({"runs": ["none", "aura"], "primary": "none", "baseline": "aura"}, "no run or curve of this sweep: aura"),
    ],
)
def test_bad_sections_are_refused_offline(section, msg):
    with pytest.raises(SaedetoxError, match=msg):
        dry_run(parse_config(BASE | {"robustness": section}))


def test_an_attack_in_the_evaluation_of_a_robustness_sweep_is_refused():
    with pytest.raises(SaedetoxError, match="drop evaluation.attack"):
        dry_run(parse_config(BASE | {"evaluation": {"attack": "override"}}))
    with pytest.raises(SaedetoxError, match="Unknown key"):
        parse_config(BASE | {"robustness": BASE["robustness"] | {"attack": "x"}})


def _metrics(method: str, log_ppl: float) -> dict:
    return {
        "config": {"method": method},
        "samples_per_prompt": 1,
        "per_prompt": {"uid": ["a", "b"], "max_tox": {}, "n_toxic": {}, "log_ppl": [log_ppl, log_ppl + 0.2]},
    }


def test_each_curve_stands_for_its_level_closest_to_the_ppl_ratio():
    cfg = parse_config(BASE)
    planned = plan(cfg)
    # PPL ratios to none: sae 1.05 / 1.16, meandiff 1.22 / 1.09 (exp of the log differences)
    clean = {
        "none": _metrics("none", 3.0),
        "prompt": _metrics("prompt", 3.3),
        "sae-conditional-p0.1": _metrics("sae", 3.0 + math.log(1.05)),
        "sae-conditional-p0.2": _metrics("sae", 3.0 + math.log(1.16)),
        "meandiff-p0.1": _metrics("meandiff", 3.0 + math.log(1.22)),
        "meandiff-p0.2": _metrics("meandiff", 3.0 + math.log(1.09)),
    }
    rb, record = select_levels(cfg.robustness, planned, clean)
    assert rb.runs == ["none", "prompt", "sae-conditional-p0.1", "meandiff-p0.2"]
    assert (rb.primary, rb.baseline) == ("sae-conditional-p0.1", "meandiff-p0.2")
    assert record["meandiff"]["ratios"]["meandiff-p0.1"] == pytest.approx(1.22)
    pairs = attacked_runs(rb, planned)
    assert len(pairs) == 3 * 4 and pairs[0][0] == "fewshot" and pairs[-1] == ("dialogue", planned[-1])


@pytest.mark.slow
def test_a_robustness_sweep_runs_attacked_runs_and_reports_them(tmp_path):
    raw = {
        **tiny_world(tmp_path),
        "evaluation": {"n_prompts": 4, "samples": 1, "max_new_tokens": 3, "batch_size": 4, "clean_texts": 0},
        "runs": [{"method": "none"}, {"method": "sae", "modes": ["constant"], "push": [0.1]}, {"method": "prompt"}],
        "robustness": {
            "attacks": ["override"],
            "runs": ["none", "sae-constant-p0.1", "prompt"],
            "primary": "sae-constant-p0.1",
            "baseline": "prompt",
            "n_boot": 100,
        },
    }
    out = tmp_path / "sweep"
    clean = run_sweep(parse_config(raw), out)
    assert set(clean) == {"none", "sae-constant-p0.1", "prompt"}  # the sweep's results stay the clean runs
    row = json.loads((out / "attacks" / "override" / "prompt" / "generations.jsonl").read_text().splitlines()[0])
    assert row["attacked_prompt"].startswith("Ignore the above.")
    res = json.loads((out / "robustness.json").read_text())
    assert res["attacks"]["override"]["headline"]["n"] == 4 and res["primary"] == "sae-constant-p0.1"
    assert "## Robustness under attack" in (out / "report.md").read_text()
    again = run_sweep(parse_config(raw), out)  # resumes: nothing is redone, the section is written once
    assert again.keys() == clean.keys()
    assert (out / "report.md").read_text().count("## Robustness under attack") == 1
