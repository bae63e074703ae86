"""The vLLM backend against the HF backend on the reference world (runs where vLLM is installed:
``make test`` runs this module in the vLLM test environment, ``.venv-vllm``).

One engine for the module (engine start is 30-110 s on 2 CPU cores).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from serving_levels import PROMPTS, level_specs

vllm = pytest.importorskip("vllm", reason="vLLM is not installed here (make test runs this in .venv-vllm)")

from saedetox.errors import SaedetoxError  # noqa: E402
from saedetox.model.load import load_model, reference_model_dir  # noqa: E402
from saedetox.sae.load import load_sae  # noqa: E402
from saedetox.serving.engine import SteeredLLM, build_levels  # noqa: E402
from saedetox.steering.steerer import Steerer  # noqa: E402

NEW = 10


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    lm = load_model("reference", dtype="float32")
    sae = load_sae("reference", lm)
    specs = level_specs(sae)
    bos = lm.tokenizer.bos_token_id
    prompts = [[bos] + lm.tokenizer(p).input_ids for p in PROMPTS]
    hf = {}
    for name, spec in specs.items():
        hf[name] = [_hf_greedy(lm, spec, ids, NEW) for ids in prompts]
    path = build_levels(lm, specs, tmp_path_factory.mktemp("levels") / "levels.pt")
    llm = SteeredLLM(
        str(reference_model_dir()), path, dtype="float32", max_model_len=256, gpu_memory_utilization=0.1, seed=0
    )
    yield lm, specs, prompts, hf, llm
    llm.close()


def _hf_greedy(lm, spec, ids, new):
    x = torch.tensor([ids])
    kw = dict(do_sample=False, max_new_tokens=new, attention_mask=torch.ones_like(x), eos_token_id=None, pad_token_id=0)
    if spec is None:
        return lm.model.generate(x, **kw)[0, x.shape[1] :].tolist()
    with Steerer(lm, spec):
        return lm.model.generate(x, **kw)[0, x.shape[1] :].tolist()


def test_every_mode_in_one_mixed_batch_equals_hf(world):
    lm, specs, prompts, hf, llm = world
    names = list(specs)
    assert any(hf[n] != hf["off"] for n in names if n != "off")
    for n in ("high", "conditional", "token", "clamp", "adaptive"):
        assert hf[n] != hf["off"], f"level {n} changes no greedy continuation: the comparison would be vacuous"
    out = llm.generate(
        [p for _ in names for p in prompts],
        [n for n in names for _ in prompts],
        temperature=0,
        max_tokens=NEW,
        ignore_eos=True,
    )
    got = {n: out[i * len(prompts) : (i + 1) * len(prompts)] for i, n in enumerate(names)}
    assert got == hf
    assert llm.state_size() == 0


def test_mixed_batch_equals_separate_calls(world):
    lm, specs, prompts, hf, llm = world
    levels = ["off", "low", "high"]
    mixed = llm.generate(
        [p for _ in levels for p in prompts],
        [n for n in levels for _ in prompts],
        temperature=0.9,
        seeds=list(range(3 * len(prompts))),
        max_tokens=NEW,
        ignore_eos=True,
    )
    alone = []
    for i, n in enumerate(levels):
        seeds = list(range(i * len(prompts), (i + 1) * len(prompts)))
        alone += llm.generate(prompts, n, temperature=0.9, seeds=seeds, max_tokens=NEW, ignore_eos=True)
    assert mixed == alone  # sampled, with a seed per prompt: batch composition changes nothing


def test_gate_per_sequence_with_uneven_lengths(world):
    """Sequences of different lengths share batches; some end early; each gate is its own."""
    lm, specs, prompts, hf, llm = world
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    lens = [3, NEW, 5, NEW, 1, 7]
    reqs = [TokensPrompt(prompt_token_ids=p) for p in prompts]
    sps = [
        SamplingParams(temperature=0, max_tokens=k, ignore_eos=True, extra_args={"saedetox_level": "conditional"})
        for k in lens
    ]
    out = [list(o.outputs[0].token_ids) for o in llm.llm.generate(reqs, sps, use_tqdm=False)]
    assert out == [h[:k] for h, k in zip(hf["conditional"], lens, strict=True)]
    assert llm.state_size() == 0


def test_plugin_installs_levels_from_the_environment(world):
    """The vllm.general_plugins entry point: a plain vllm.LLM in a fresh process steers when SAEDETOX_LEVELS is set."""
    lm, specs, prompts, hf, llm = world
    script = Path(__file__).with_name("plugin_check.py")
    env = {**os.environ, "SAEDETOX_LEVELS": llm.levels_path}
    proc = subprocess.run(
        [sys.executable, str(script), str(reference_model_dir()), json.dumps(prompts[0]), "off", "high"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-2000:]
    assert json.loads(lines[-1][7:]) == [hf["off"][0][:10], hf["high"][0][:10]]


def test_unknown_level_refused_before_the_engine(world):
    llm = world[4]
    with pytest.raises(SaedetoxError, match="Unknown steering level 'extreme'"):
        llm.generate([world[2][0]], "extreme", max_tokens=2)
