"""Real processes interrupted (Ctrl-C, ``kill -9`` mid-batch, mid-scoring, mid-sweep) then resumed give the
uninterrupted result: byte-identical ``generations.jsonl`` and identical metrics except timings; a second
writer on a running folder is refused at once.

Each run is a separate process (:mod:`faultdriver`: forked from a server that imported the pipeline
once) running the CLI's ``main`` on the reference world with tiny settings.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import time
from pathlib import Path

import pytest

import faultdriver
from saedetox.cli.app import main

EVAL = ["evaluate", "--model", "reference", "--n-prompts", "6", "--samples", "2", "--max-new-tokens", "4"]
EVAL += ["--batch-size", "4", "--clean-texts", "1", "--judges", "profanity,probe"]  # 3 batches of 2 prompts
TIMINGS = {"wall_seconds", "generation_seconds"}


def _metrics(path: Path) -> dict:
    obj = json.loads(path.read_text())
    return {k: v for k, v in obj.items() if k not in TIMINGS}


def _rows(path: Path) -> list[int]:
    return [json.loads(line)["i"] for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """The uninterrupted run, in a process of its own like the interrupted ones."""
    root = tmp_path_factory.mktemp("uninterrupted")
    code, out, err = faultdriver.run(EVAL + ["--out", str(root / "run")], root / "log")
    assert code == 0, err
    return root / "run"


def _same_as(run: Path, ref: Path) -> None:
    assert (run / "generations.jsonl").read_bytes() == (ref / "generations.jsonl").read_bytes()
    assert _metrics(run / "metrics.json") == _metrics(ref / "metrics.json")


def _wait_for_rows(path: Path, n: int, proc, timeout: float = 120) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if path.exists() and path.read_text().count("\n") >= n:
            return
        assert proc.is_alive(), "the run ended before it could be interrupted"
        time.sleep(0.02)
    raise TimeoutError(path)


@pytest.mark.slow
def test_ctrl_c_exits_130_says_how_to_resume_and_resumes(reference_run, tmp_path):
    run = tmp_path / "run"
    argv = EVAL + ["--out", str(run)]
    proc = faultdriver.start(argv, tmp_path / "a", fault=("sleep", 3.0))
    _wait_for_rows(run / "generations.jsonl", 2, proc)  # the first batch is written; the second is under way
    os.kill(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
    code, out, err = faultdriver.finish(proc, tmp_path / "a")
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 130, err
    assert len(lines) == 1 and "Traceback" not in err
    assert lines[0] == (
        f"interrupted; the run is resumable: rerun `{shlex.join(['saedetox', *argv])}` to continue where it stopped."
    )
    assert not (run / "metrics.json").exists() and len(_rows(run / "generations.jsonl")) < 6
    code, _, err = faultdriver.run(argv, tmp_path / "b")
    assert code == 0, err
    _same_as(run, reference_run)


@pytest.mark.slow
def test_kill_9_mid_batch_then_resume(reference_run, tmp_path):
    run = tmp_path / "run"
    argv = EVAL + ["--out", str(run)]
    code, _, _ = faultdriver.run(argv, tmp_path / "a", fault=("kill", 2))
    assert code == -9
    text = (run / "generations.jsonl").read_text()
    assert text.count("\n") == 3 and not text.endswith("\n")  # batch 2: one row whole, one torn
    code, _, err = faultdriver.run(argv, tmp_path / "b")
    assert code == 0, err
    assert _rows(run / "generations.jsonl") == list(range(6))  # finished: in prompt order
    _same_as(run, reference_run)


@pytest.mark.slow
def test_kill_9_mid_scoring_then_resume(reference_run, tmp_path):
    run = tmp_path / "run"
    argv = EVAL + ["--out", str(run)]
    code, _, _ = faultdriver.run(argv, tmp_path / "a", fault=("kill-after-judge", 1))
    assert code == -9 and (run / "scores.npz").exists() and not (run / "metrics.json").exists()
    stamp = (run / "generations.jsonl").stat().st_mtime_ns
    code, _, err = faultdriver.run(argv, tmp_path / "b")
    assert code == 0, err
    assert (run / "generations.jsonl").stat().st_mtime_ns == stamp  # nothing regenerated
    _same_as(run, reference_run)


def test_second_writer_is_refused_at_once(tmp_path, capsys):
    run = tmp_path / "run"
    argv = EVAL + ["--out", str(run)]
    proc = faultdriver.start(argv, tmp_path / "a", fault=("sleep", 120.0))  # holds the folder after batch 1
    try:
        _wait_for_rows(run / "generations.jsonl", 2, proc)
        with pytest.raises(SystemExit) as ex:
            main(argv)
        err = capsys.readouterr().err
        assert ex.value.code == 2 and err.count("\n") == 1
        assert "in use by another saedetox process (evaluate)" in err
        assert proc.is_alive()  # refused while the first writer is still running, without waiting for it
    finally:
        proc.kill()
        faultdriver.finish(proc, tmp_path / "a")
    assert len(_rows(run / "generations.jsonl")) == 2  # the first batch only: the refused writer wrote nothing


SWEEP = {
    "model": "reference",
    "sae": "reference",
    "features": [3, 17, 42],
    "evaluation": {"n_prompts": 4, "samples": 2, "max_new_tokens": 4, "batch_size": 4, "clean_texts": 0},
    "runs": [{"method": "none"}, {"method": "sae", "modes": ["constant"], "tiers": ["low"]}],
}


@pytest.mark.slow
def test_kill_9_mid_sweep_then_resume(tmp_path):
    cfg = tmp_path / "sweep.yaml"
    cfg.write_text(json.dumps(SWEEP))
    ref, run = tmp_path / "ref" / "sweep", tmp_path / "run" / "sweep"
    code, _, err = faultdriver.run(["sweep", str(cfg), "--out", str(ref)], tmp_path / "r")
    assert code == 0, err
    code, _, _ = faultdriver.run(["sweep", str(cfg), "--out", str(run)], tmp_path / "a", fault=("kill", 3))
    assert code == -9 and (run / "runs" / "none" / "metrics.json").exists()  # killed in the second run's batch 1
    assert not (run / "metrics.json").exists()
    code, _, err = faultdriver.run(["sweep", str(cfg), "--out", str(run)], tmp_path / "b")
    assert code == 0, err
    for name in ("none", "sae-constant-low"):
        _same_as(run / "runs" / name, ref / "runs" / name)
    strip = lambda m: {k: {x: y for x, y in v.items() if x not in TIMINGS} for k, v in m.items()}  # noqa: E731
    assert strip(json.loads((run / "metrics.json").read_text())) == strip(
        json.loads((ref / "metrics.json").read_text())
    )
