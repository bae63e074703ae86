"""The prompt and mean-difference baselines, proven on a tiny model (AurA and Surgery: test_aura, test_surgery)."""

from __future__ import annotations

import pytest
import torch

from saedetox.methods.contrast import ContrastData
from saedetox.methods.meandiff import meandiff_direction
from saedetox.methods.prompt import POLITE_PREFIX
from saedetox.methods.registry import build_baseline
from saedetox.model.capture import capture
from saedetox.steering.resolve import median_residual_norm
from saedetox.steering.spec import TIER_FACTORS

TOXIC = ["you stupid idiot, shut up", "what a damn fool you are", "shut up you fucking moron", "go to hell, idiot"] * 2
CLEAN = ["you are a kind person, thanks", "what a lovely day it is", "please be quiet, my friend", "go to the park"] * 2
DATA = ContrastData(TOXIC, CLEAN)
HOOK = "blocks.1.hook_resid_pre"


def test_prompt_prefix_conditions_generation_only(tmp_path, gpt2):
    from saedetox.data.readers import Prompt
    from saedetox.eval.run import generate_all
    from saedetox.eval.sampler.sampling import SamplingConfig

    m = build_baseline(gpt2, "prompt")
    assert m.prefix == POLITE_PREFIX
    seen = []
    h = gpt2.model.register_forward_pre_hook(lambda mod, a, k: seen.append(k["input_ids"].clone()), with_kwargs=True)
    try:
        sampling = SamplingConfig(n_samples=1, max_new_tokens=2, do_sample=False)
        generate_all(gpt2, [Prompt("She walked")], m, sampling, tmp_path)
    finally:
        h.remove()
    text = gpt2.tokenizer.decode(seen[0][0])
    assert POLITE_PREFIX.strip() in text and text.rstrip().endswith("She walked")
    row = (tmp_path / "generations.jsonl").read_text()
    assert '"prompt": "She walked"' in row and "polite" not in row


def test_meandiff_direction_and_strength(gpt2):
    v = meandiff_direction(gpt2, HOOK, DATA)
    tox = torch.cat([a[1:] for a in capture(gpt2, TOXIC, HOOK)]).mean(0)
    cln = torch.cat([a[1:] for a in capture(gpt2, CLEAN, HOOK)]).mean(0)
    want = (tox - cln) / (tox - cln).norm()
    assert torch.allclose(v, want, atol=1e-5)
    m = build_baseline(gpt2, "meandiff", hook=HOOK, tier="high", data=DATA)
    median = median_residual_norm(gpt2, HOOK)
    with m.context() as st:
        shift = st.resolved[0].vector
        assert torch.allclose(shift / shift.norm(), -want, atol=1e-5)
        assert float(shift.norm()) == pytest.approx(TIER_FACTORS["high"] * median, rel=1e-4)
