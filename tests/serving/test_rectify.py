"""Rectification's vLLM logits processor against the HF decode loop on the reference LM (where vLLM is installed)."""

from __future__ import annotations

import pytest
import torch

vllm = pytest.importorskip("vllm", reason="vLLM is not installed here (make test runs this in .venv-vllm)")

from vllm.exceptions import VLLMValidationError  # noqa: E402

from saedetox.eval.sampler.sampling import sample  # noqa: E402
from saedetox.methods.rectification import rectification_method, zero_value_model  # noqa: E402
from saedetox.methods.value_model import save_value_model  # noqa: E402
from saedetox.model.load import load_model, reference_model_dir  # noqa: E402
from saedetox.serving.rectify import EXTRA_KEY, RectificationLogitsProcessor  # noqa: E402

PROMPTS = ["You are such a", "The weather today is", "I hate it when people"]
NEW = 10


def _hf(lm, vm=None, eps=0.0):
    kw = dict(n_samples=1, max_new_tokens=NEW, do_sample=False, batch_size=8)
    if vm is None:
        return [row[0].token_ids for row in sample(lm, PROMPTS, **kw)]
    with rectification_method(lm, strength=eps, value_model=vm).context():
        return [row[0].token_ids for row in sample(lm, PROMPTS, **kw)]


def test_vllm_processor_equals_the_hf_decode_loop(tmp_path):
    lm = load_model("reference", dtype="float32")
    plain = _hf(lm)
    banned = plain[0][0]  # the first greedy token of the first prompt
    vm = zero_value_model(lm)
    with torch.no_grad():
        torch.manual_seed(0)
        vm.head.weight.normal_(0, 1e-3)
        vm.head.bias[banned] = -1.0
    path = tmp_path / "value.pt"
    save_value_model(vm, path, {})
    rectified = _hf(lm, vm, 0.1)
    assert rectified != plain and all(banned not in r for r in rectified)

    llm = vllm.LLM(
        model=str(reference_model_dir()),
        dtype="float32",
        max_model_len=256,
        gpu_memory_utilization=0.1,
        seed=0,
        logits_processors=[RectificationLogitsProcessor],
    )
    bos = lm.tokenizer.bos_token_id
    prompts = [vllm.inputs.TokensPrompt(prompt_token_ids=[bos] + lm.tokenizer(p).input_ids) for p in PROMPTS]
    on = vllm.SamplingParams(
        temperature=0, max_tokens=NEW, extra_args={EXTRA_KEY: {"value_model": str(path), "epsilon": 0.1}}
    )
    off = vllm.SamplingParams(temperature=0, max_tokens=NEW)
    outs = llm.generate(prompts + prompts, [on] * len(prompts) + [off] * len(prompts), use_tqdm=False)
    got = [list(o.outputs[0].token_ids) for o in outs]
    eos = lm.tokenizer.eos_token_id
    got = [g[: g.index(eos)] if eos in g else g for g in got]
    assert got[: len(PROMPTS)] == rectified  # the same rule, the same tokens, mixed in one batch with plain requests
    assert got[len(PROMPTS) :] == plain
    with pytest.raises(VLLMValidationError, match="value_model"):  # vLLM's form of the processor's ValueError
        llm.generate(prompts[:1], vllm.SamplingParams(max_tokens=2, extra_args={EXTRA_KEY: {"epsilon": 0.1}}))
