"""generations.jsonl resumes row by row: a torn line in the middle of a batch never duplicates rows."""

from __future__ import annotations

import json

import pytest

from saedetox.errors import SaedetoxError
from saedetox.eval.config import EvalConfig
from saedetox.eval.run import evaluate
from saedetox.eval.runs.generation_log import GenerationLog


def cfg(**kw):
    base = dict(n_prompts=6, samples=2, max_new_tokens=3, batch_size=4, clean_texts=0, judges=("profanity",), n_boot=10)
    base.update(kw)
    return EvalConfig(**base)  # batches of 2 prompts


def test_torn_line_in_the_middle_of_a_batch_resumes_byte_identical(tmp_path, gpt2):
    run = tmp_path / "run"
    full = evaluate(gpt2, run, cfg())
    gen = run / "generations.jsonl"
    whole = gen.read_bytes()
    lines = whole.decode().splitlines()
    # a crash while writing batch 1 (rows 2, 3): row 2 whole, row 3 cut in half
    gen.write_text("\n".join(lines[:3]) + "\n" + lines[3][: len(lines[3]) // 2])
    (run / "metrics.json").unlink()
    (run / "scores.npz").unlink()
    again = evaluate(gpt2, run, cfg())
    assert gen.read_bytes() == whole  # row 2 is not written twice; row 3 is completed
    assert again["toxicity"] == full["toxicity"]


def test_rows_of_an_older_saedetox_are_deduplicated_in_order(tmp_path):
    path = tmp_path / "g.jsonl"
    rows = [{"i": i, "prompt": f"p{i}", "continuations": ["a", "b"]} for i in range(4)]
    path.write_text("".join(json.dumps(r) + "\n" for r in [rows[0], rows[1], rows[2], rows[2], rows[3], rows[2]]))
    log = GenerationLog(path)
    assert sorted(log.rows) == [0, 1, 2, 3]
    assert [json.loads(x)["i"] for x in path.read_text().splitlines()] == [0, 1, 2, 3]
    assert log.append(rows[2:4]) == 0  # nothing written twice


def test_a_corrupt_line_before_the_last_is_an_error_not_a_silent_truncation(tmp_path):
    path = tmp_path / "g.jsonl"
    good = json.dumps({"i": 0, "prompt": "p", "continuations": ["a"]})
    path.write_text(good + "\n{not json\n" + good.replace('"i": 0', '"i": 1') + "\n")
    with pytest.raises(SaedetoxError, match="line 2 is corrupt"):
        GenerationLog(path)


def test_rows_of_another_run_are_refused(tmp_path):
    path = tmp_path / "g.jsonl"
    path.write_text(json.dumps({"i": 0, "prompt": "other prompt", "continuations": ["a", "b"]}) + "\n")
    with pytest.raises(SaedetoxError, match="does not belong to this run"):
        GenerationLog(path).check(["my prompt"], 2)
