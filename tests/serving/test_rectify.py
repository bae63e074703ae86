"""Rectification on vLLM against the HF decode loop on the reference LM (where vLLM is installed).

The module shares one engine: the one ``sample(..., backend="vllm")`` and ``evaluate(backend="vllm")``
start (every run's engine loads the rectification processor)."""

from __future__ import annotations

import json

import pytest
import torch

vllm = pytest.importorskip("vllm", reason="vLLM is not installed here (make test runs this in .venv-vllm)")

from vllm.exceptions import VLLMValidationError  # noqa: E402
from vllm.inputs import TokensPrompt  # noqa: E402

from saedetox.eval.config import EvalConfig  # noqa: E402
from saedetox.eval.run import evaluate  # noqa: E402
from saedetox.eval.runs.generation import sample_method  # noqa: E402
from saedetox.eval.sampler.sampling import sample  # noqa: E402
from saedetox.eval.sampler.settings import SamplingConfig  # noqa: E402
from saedetox.eval.sampler.vllm import encode_prompts, run_engine  # noqa: E402
from saedetox.methods.dead_end import request_args  # noqa: E402
from saedetox.methods.rectification import rectification_method, zero_value_model  # noqa: E402
from saedetox.methods.value_model import save_value_model  # noqa: E402
from saedetox.model.load import load_model  # noqa: E402
from saedetox.serving.engine import close_shared_engine  # noqa: E402
from saedetox.serving.rectify import EXTRA_KEY  # noqa: E402

pytestmark = pytest.mark.slow  # one engine start (30–110 s on two CPU cores)

PROMPTS = ["You are such a", "The weather today is", "I hate it when people"]
NEW = 10
GREEDY = dict(n_samples=1, max_new_tokens=NEW, do_sample=False, batch_size=8)


def _ids(groups):
    return [[s.token_ids for s in g] for g in groups]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The reference LM, a value model that makes one token a certain dead end, and the HF greedy tokens."""
    lm = load_model("reference", dtype="float32")
    plain = _ids(sample(lm, PROMPTS, **GREEDY))
    banned = plain[0][0][0]  # the first greedy token of the first prompt
    vm = zero_value_model(lm)
    with torch.no_grad():
        torch.manual_seed(0)
        vm.head.weight.normal_(0, 1e-3)
        vm.head.bias[banned] = -1.0
    path = tmp_path_factory.mktemp("value") / "value.pt"
    save_value_model(vm, path, {})
    method = rectification_method(lm, strength=0.1, value_model=vm)
    with method.context():
        rectified = _ids(sample(lm, PROMPTS, **GREEDY))
    assert rectified != plain and all(banned not in r[0] for r in rectified)
    yield {"lm": lm, "vm": vm, "path": path, "banned": banned, "plain": plain, "rectified": rectified}
    close_shared_engine()


def test_greedy_vllm_sampling_under_rectification_equals_the_hf_sampler(world, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # the in-memory value model is saved here for the workers
    lm = world["lm"]
    method = rectification_method(lm, strength=0.1, value_model=world["vm"])
    with method.context():
        got = _ids(sample(lm, PROMPTS, backend="vllm", **GREEDY))
    assert got == world["rectified"]
    assert all(world["banned"] not in r[0] for r in got)  # the zeroed token never reaches vLLM's output
    assert _ids(sample(lm, PROMPTS, backend="vllm", **GREEDY)) == world["plain"]  # detached: plain again
    # the path of `generate --method rectification --backend vllm`: the method's request arguments
    cfg = SamplingConfig(**GREEDY)
    assert _ids(sample_method(lm, method, PROMPTS, cfg, backend="vllm")) == world["rectified"]


def test_rectified_and_plain_requests_share_a_batch(world):
    lm = world["lm"]
    ids = encode_prompts(lm, PROMPTS, SamplingConfig(**GREEDY))
    with run_engine(lm, None) as engine:
        on = engine.sampling_params(temperature=0, max_tokens=NEW, extra_args=request_args(str(world["path"]), 0.1))
        off = engine.sampling_params(temperature=0, max_tokens=NEW)
        prompts = [TokensPrompt(prompt_token_ids=p) for p in ids]
        outs = engine.llm.generate(prompts + prompts, [on] * len(ids) + [off] * len(ids), use_tqdm=False)
        eos = lm.tokenizer.eos_token_id
        got = [list(o.outputs[0].token_ids) for o in outs]
        got = [g[: g.index(eos)] if eos in g else g for g in got]
        assert got[: len(ids)] == [r[0] for r in world["rectified"]]
        assert got[len(ids) :] == [r[0] for r in world["plain"]]
        bad = engine.sampling_params(max_tokens=2, extra_args={EXTRA_KEY: {"epsilon": 0.1}})
        with pytest.raises(VLLMValidationError, match="value_model"):  # vLLM's form of the processor's ValueError
            engine.llm.generate(prompts[:1], bad, use_tqdm=False)


def test_a_vllm_rectification_run_records_what_an_hf_run_records(world, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    lm = world["lm"]
    cfg = EvalConfig(n_prompts=4, samples=2, max_new_tokens=6, judges=("profanity",), clean_texts=0, n_boot=20)
    res = {}
    for backend in ("hf", "vllm"):
        method = rectification_method(lm, strength=0.1, value_model=world["vm"])
        res[backend] = evaluate(lm, tmp_path / backend, cfg, method, backend=backend)
    hf, vl = (json.loads((tmp_path / b / "metrics.json").read_text()) for b in ("hf", "vllm"))
    assert set(hf) == set(vl) and set(hf["config"]) == set(vl["config"])
    assert hf["config"]["rectification"] == vl["config"]["rectification"]
    assert vl["config"]["sampling"]["sampler"] == "vllm-seeded-v1"
    st_h, st_v = hf["steering"]["rectification"], vl["steering"]["rectification"]
    assert set(st_h) == set(st_v) and st_v["rows"] > 0 and st_v["changed_share"] > 0
    rows = [json.loads(x) for x in (tmp_path / "vllm" / "generations.jsonl").read_text().splitlines()]
    assert all(world["banned"] not in c for r in rows for c in r["continuation_ids"])


def test_data_parallel_engines_rectify_as_the_single_engine_does(world, tmp_path, monkeypatch):
    """Two data-parallel engines (vLLM's engine client) receive each request's value model and ε and give
    the single engine's tokens: per-prompt seeds make the rows independent of the engine that served them."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    lm = world["lm"]
    cfg = EvalConfig(
        n_prompts=4, samples=2, max_new_tokens=6, judges=("profanity",), clean_texts=0, n_boot=20, vllm_memory=0.1
    )
    method = rectification_method(lm, strength=0.1, value_model=world["vm"])
    evaluate(lm, tmp_path / "one", cfg, method, backend="vllm")
    close_shared_engine()  # its memory, for the two engines of the next run
    method = rectification_method(lm, strength=0.1, value_model=world["vm"])
    evaluate(lm, tmp_path / "dp", cfg, method, backend="vllm", data_parallel=2)

    def rows(name):
        lines = (tmp_path / name / "generations.jsonl").read_text().splitlines()
        return {r["i"]: r["continuation_ids"] for r in map(json.loads, lines)}

    assert rows("dp") == rows("one") and all(world["banned"] not in c for cs in rows("dp").values() for c in cs)
    dp = json.loads((tmp_path / "dp" / "metrics.json").read_text())
    assert dp["config"]["data_parallel"] == 2 and dp["config"]["rectification"]["epsilon"] is not None
