"""Capability benchmarks through lm-eval on the tiny model, offline, with and without steering hooks."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from saedetox.data.location import data_file
from saedetox.errors import SaedetoxError
from saedetox.eval.metrics.capability import (
    KNOWN_TASKS,
    blimp_accuracy,
    blimp_logprobs,
    evaluate_tasks,
    interleave_by_paradigm,
    load_blimp_pairs,
    render_tasks,
    run_capability,
)
from saedetox.steering.spec import Intervention, SteeringSpec
from saedetox.steering.steerer import Steerer

LIMIT = 4


@pytest.fixture(scope="module")
def plain(gpt2):
    return run_capability(gpt2, limit=LIMIT, batch_size=8)


@pytest.fixture(scope="module")
def samples(gpt2):
    res = evaluate_tasks(gpt2, KNOWN_TASKS, limit=LIMIT, log_samples=True)
    return {name.removeprefix("saedetox_"): sorted(s, key=lambda x: x["doc_id"]) for name, s in res["samples"].items()}


@pytest.fixture(scope="module")
def steerer(gpt2, sae_dir):
    return Steerer(gpt2, SteeringSpec([Intervention(sae=str(sae_dir), latents=[0, 1, 2], strength=20.0)]))


def _blimp_lls(gpt2, limit):
    res = evaluate_tasks(gpt2, ["blimp"], limit=limit, log_samples=True)
    docs = sorted(res["samples"]["saedetox_blimp"], key=lambda x: x["doc_id"])
    return np.array([[r[0][0] for r in d["resps"]] for d in docs])


def test_every_local_task_runs_offline(plain):
    # accuracies and perplexities are kept apart (a mean over both would mix a PPL into accuracies)
    assert set(plain.accuracy) == set(KNOWN_TASKS)
    for task in KNOWN_TASKS:
        assert 0.0 <= plain.accuracy[task] <= 1.0
    assert set(plain.perplexity) == {"lambada"} and plain.perplexity["lambada"] > 1.0


def test_requests_follow_lm_eval_conventions(samples):
    assert all(len(samples[t]) == LIMIT for t in KNOWN_TASKS)
    rows = [json.loads(line) for line in data_file("benchmarks/llmfoundry_local_data/winogrande.jsonl").open()]
    wino = samples["winogrande"][0]["arguments"]
    # partial scoring: the choices are contexts, the shared continuation is scored after each
    assert [tuple(a) for a in wino] == [(c, " " + rows[0]["continuation"]) for c in rows[0]["context_options"]]
    lam = samples["lambada"][0]["arguments"][0]
    assert lam[1].startswith(" ") and not lam[0].endswith(" ")
    piqa = samples["piqa"][0]["arguments"]
    assert piqa[0][0].startswith("Question: ") and piqa[0][0].endswith("\nAnswer:") and len(piqa) == 2
    assert len(samples["arc_easy"][0]["arguments"]) == 4
    blimp = samples["blimp"]
    assert blimp[0]["arguments"][0][0] == "" and blimp[0]["doc"]["UID"] != blimp[1]["doc"]["UID"]


def test_native_blimp_agrees_with_lm_eval(gpt2):
    n = 20
    lls = _blimp_lls(gpt2, n)
    pairs = load_blimp_pairs(limit=n)
    native = blimp_logprobs(gpt2, pairs, batch_size=7)
    np.testing.assert_allclose(native, lls, rtol=1e-4, atol=1e-3)
    assert len({p[0] for p in pairs}) == n
    acc = blimp_accuracy(gpt2, pairs)
    assert acc == pytest.approx(float((lls[:, 0] > lls[:, 1]).mean()))
    dicts = [{"sentence_good": g, "sentence_bad": b} for g, b in pairs]
    assert blimp_accuracy(gpt2, dicts) == acc


def test_steering_hooks_apply_inside_lm_eval(gpt2, steerer):
    base = _blimp_lls(gpt2, 8)
    with steerer:
        steered = _blimp_lls(gpt2, 8)
        native = blimp_logprobs(gpt2, load_blimp_pairs(limit=8))
    assert np.abs(steered - base).max() > 1e-2
    np.testing.assert_allclose(native, steered, rtol=1e-4, atol=1e-3)  # same hooks in both paths
    np.testing.assert_allclose(_blimp_lls(gpt2, 8), base, rtol=0, atol=1e-6)  # detached: back to plain


def test_lm_eval_loglikelihoods_are_steered_at_every_position(gpt2, sae_dir):
    """lm-eval scores texts: positions=generated steers them exactly as positions=all."""
    base = _blimp_lls(gpt2, 4)
    got = {}
    for positions in ("all", "generated"):
        iv = Intervention(sae=str(sae_dir), latents=[0, 1, 2], strength=20.0, positions=positions)
        with Steerer(gpt2, SteeringSpec([iv])):
            got[positions] = _blimp_lls(gpt2, 4)
    np.testing.assert_allclose(got["generated"], got["all"], rtol=1e-5, atol=1e-5)
    assert np.abs(got["all"] - base).max() > 1e-2


def test_run_capability_with_steerer(gpt2, steerer, plain):
    steered = run_capability(gpt2, tasks=("lambada",), limit=LIMIT, steerer=steerer, batch_size=8)
    assert not steerer.is_attached
    assert steered.perplexity["lambada"] != pytest.approx(plain.perplexity["lambada"], rel=1e-3)
    again = run_capability(gpt2, tasks=("lambada",), limit=LIMIT, batch_size=8)
    assert again.accuracy == {"lambada": plain.accuracy["lambada"]}
    assert again.perplexity == {"lambada": pytest.approx(plain.perplexity["lambada"], rel=1e-5)}
    with steerer:  # an attached steerer stays attached and applies
        inside = run_capability(gpt2, tasks=("lambada",), limit=LIMIT, steerer=steerer, batch_size=8)
        assert steerer.is_attached
    assert inside.perplexity["lambada"] == pytest.approx(steered.perplexity["lambada"], rel=1e-5)


def test_unknown_task_and_foreign_steerer(gpt2, steerer):
    from helpers import tiny_gpt2

    with pytest.raises(SaedetoxError, match="Unknown capability task 'hellaswag'"):
        run_capability(gpt2, tasks=("hellaswag",))
    with pytest.raises(SaedetoxError):
        run_capability(gpt2, tasks=())
    with pytest.raises(SaedetoxError, match="different model"):
        run_capability(tiny_gpt2(), tasks=("copa",), steerer=steerer)


def test_missing_data_file_is_one_clear_error(gpt2, tmp_path):
    (tmp_path / "README").write_text("not a benchmark folder")
    with pytest.raises(SaedetoxError, match="lambada_openai.jsonl is missing"):
        run_capability(gpt2, tasks=("lambada",), data_dir=tmp_path)


def test_data_dir_is_resolved_at_run_time(gpt2, tmp_path):
    root = tmp_path / 'odd "data" dir'
    dest = root / "benchmarks" / "llmfoundry_local_data"
    dest.mkdir(parents=True)
    rows = [json.loads(line) for line in data_file("benchmarks/llmfoundry_local_data/copa.jsonl").open()][:2]
    for r in rows:  # swap the choices: accuracy on these two items must flip
        r["choices"], r["gold"] = r["choices"][::-1], 1 - r["gold"]
    (dest / "copa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "rendered"
    out.mkdir()
    assert render_tasks(["copa"], out, root) == ["saedetox_copa"]
    text = (out / "copa.yaml").read_text()
    assert "@DATA_DIR@" not in text and str(dest / "copa.jsonl").replace('"', '\\"') in text
    local = run_capability(gpt2, tasks=("copa",), limit=2, data_dir=root)
    shared = run_capability(gpt2, tasks=("copa",), limit=2)
    assert local.accuracy["copa"] == pytest.approx(1.0 - shared.accuracy["copa"])
    shutil.rmtree(out)


def test_interleave_by_paradigm():
    assert interleave_by_paradigm(["a", "a", "b", "b", "c"]) == [0, 2, 4, 1, 3]
    assert interleave_by_paradigm([]) == []


def test_lm_eval_prints_no_git_noise_outside_a_repository(gpt2, tmp_path, monkeypatch, capfd):
    # lm-eval runs `git describe` in the working directory; outside a repository git printed
    # "fatal: not a git repository" straight to the terminal
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    res = evaluate_tasks(gpt2, ["copa"], limit=2)
    assert "saedetox_copa" in res["results"]
    assert "not a git repository" not in capfd.readouterr().err


def test_built_tasks_are_reused_within_a_process(gpt2, monkeypatch):
    import lm_eval.tasks

    from saedetox.eval.metrics import capability

    capability._BUILT.clear()
    builds = []
    real = lm_eval.tasks.get_task_dict
    monkeypatch.setattr(lm_eval.tasks, "get_task_dict", lambda *a, **k: builds.append(a[0]) or real(*a, **k))
    first = run_capability(gpt2, tasks=("copa", "blimp"), limit=2, batch_size=8)
    second = run_capability(gpt2, tasks=("copa", "blimp"), limit=2, batch_size=8)
    assert builds == [["saedetox_copa", "saedetox_blimp"]]  # built once, then reused
    assert first == second and list(first.accuracy) == ["copa", "blimp"]  # in the order asked for
    run_capability(gpt2, tasks=("copa",), limit=2, batch_size=8)
    assert len(builds) == 2  # another task list is built anew
