"""The paired design of a sweep: every method scores the same prompts with the same per-batch random streams."""

from __future__ import annotations

import json

import pytest

from helpers import tiny_world
from saedetox.experiments.config import parse_config
from saedetox.experiments.sweep import run_sweep
from saedetox.report.compare import compare


@pytest.mark.slow
def test_all_methods_of_a_sweep_share_prompts_and_random_streams(tmp_path):
    raw = {
        **tiny_world(tmp_path),
        "evaluation": {
            "n_prompts": 6,
            "samples": 3,
            "max_new_tokens": 6,
            "batch_size": 6,
            "clean_texts": 0,
            "judges": ["probe"],
            "n_boot": 50,
        },
        "runs": [
            {"method": "none"},
            # a push far too small to change a token: the same random stream must give the same samples
            {"method": "sae", "modes": ["constant"], "strengths": [1e-7, 30.0]},
        ],
        "comparison": {"ppl_ratios": [1.05], "n_boot": 200},
    }
    out = tmp_path / "sweep"
    res = run_sweep(parse_config(raw), out)
    names = ["none", "sae-constant-a1e-07", "sae-constant-a30"]
    assert set(res) == set(names)
    uids = {n: res[n]["per_prompt"]["uid"] for n in names}
    assert uids["none"] == uids["sae-constant-a1e-07"] == uids["sae-constant-a30"]

    def gens(name):
        rows = [json.loads(x) for x in (out / "runs" / name / "generations.jsonl").read_text().splitlines()]
        return [r["continuations"] for r in rows]

    assert gens("sae-constant-a1e-07") == gens("none")  # same (seed, batch) streams for every method
    assert gens("sae-constant-a30") != gens("none")  # and the steering does act
    # the pairs are usable: comparing a run with its near-copy gives zero differences
    same = compare(f"{out}::none", f"{out}::sae-constant-a1e-07", n_boot=200)
    assert all(d["diff"] == 0.0 for d in same["differences"])
    assert "The answer" in (out / "report.md").read_text()
