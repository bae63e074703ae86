"""An exported folder reproduces saedetox's steered greedy generation with plain transformers calls.

``AutoTokenizer.from_pretrained(dir)`` + ``AutoModelForCausalLM.from_pretrained(dir).generate(**tok(prompt,
return_tensors="pt"), do_sample=False, max_new_tokens=N)`` and nothing else: the saved tokenizer has
to add BOS where saedetox prepends it, token for token.
"""

from __future__ import annotations

import json

import pytest
import torch

from helpers import tiny_llama, write_sae
from saedetox.eval.sampler.sampling import sample
from saedetox.methods.contrast import ContrastData
from saedetox.methods.export import export_baseline
from saedetox.methods.meandiff import meandiff_method
from saedetox.methods.surgery import surgery_method
from saedetox.methods.surgery_probe import ProbeConfig
from saedetox.steering.checkpoint import bos_tokenizer
from saedetox.steering.export import export
from saedetox.steering.spec import Intervention, SteeringSpec
from saedetox.steering.steerer import Steerer

PROMPTS = ["The library opens at nine", "You are a", "She walked"]
N = 10
DATA = ContrastData(
    ["you stupid idiot, shut up", "what a damn fool you are", "go to hell, idiot", "shut up you moron"],
    ["you are a kind person, thanks", "what a lovely day it is", "go to the park", "please be quiet, my friend"],
)


def ours(lm, context) -> list[list[int]]:
    """saedetox's own greedy continuations (cut before EOS) with the steering active."""
    with context:
        return [s[0].token_ids for s in sample(lm, PROMPTS, n_samples=1, do_sample=False, max_new_tokens=N)]


def plain(folder, eos: int | None, bos_stripped: bool = False) -> list[list[int]]:
    """Greedy continuations from the folder, plain transformers calls (``bos_stripped``: as if BOS were not added)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    out = []
    for p in PROMPTS:
        enc = tok(p, return_tensors="pt")
        if bos_stripped:
            enc = {k: v[:, 1:] for k, v in enc.items()}
        with torch.no_grad():
            new = model.generate(**enc, do_sample=False, max_new_tokens=N)[0, enc["input_ids"].shape[1] :].tolist()
        out.append(new[: new.index(eos)] if eos in new else new)
    return out


def _check(lm, folder, context, bos_matters: bool = True):
    steered = ours(lm, context)
    assert plain(folder, lm.tokenizer.eos_token_id) == steered
    assert json.loads((folder / "tokenizer_config.json").read_text())["add_bos_token"] is True
    if bos_matters:  # without the BOS the same weights continue differently: the tokenizer is what makes it match
        assert plain(folder, lm.tokenizer.eos_token_id, bos_stripped=True) != steered


@pytest.fixture(scope="module")
def reference_lm():
    from saedetox.model.load import load_model

    return load_model("reference", dtype="float32", device="cpu")


def test_gpt2_style_tokenizer_does_not_add_bos_by_itself(gpt2):
    ids = gpt2.tokenizer("She walked")["input_ids"]
    assert ids[0] != gpt2.tokenizer.bos_token_id  # the case the export has to fix
    assert bos_tokenizer(gpt2.tokenizer)("She walked")["input_ids"] == [gpt2.tokenizer.bos_token_id, *ids]
    assert gpt2.tokenizer("She walked")["input_ids"] == ids  # the loaded tokenizer is left untouched


def test_constant_sae_steering_tiny_model(tmp_path, gpt2):
    d = write_sae(tmp_path / "sae", gpt2.d_model, hook="blocks.1.hook_resid_pre")
    spec = SteeringSpec([Intervention(sae=str(d), latents=[1, 4, 9], strength=1.0)])
    export(gpt2, spec, tmp_path / "out")
    _check(gpt2, tmp_path / "out", Steerer(gpt2, spec))


@pytest.mark.slow
def test_constant_sae_steering_reference_lm(tmp_path, reference_lm):
    spec = SteeringSpec([Intervention(sae="reference", latents=[1, 2, 3], tier="high")])
    export(reference_lm, spec, tmp_path / "out")
    _check(reference_lm, tmp_path / "out", Steerer(reference_lm, spec))


@pytest.mark.slow
@pytest.mark.parametrize("which", ["tiny", "reference"])
def test_meandiff_export(tmp_path, gpt2, reference_lm, which):
    lm = gpt2 if which == "tiny" else reference_lm
    hook = f"blocks.{lm.n_layers // 2}.hook_resid_pre"
    export_baseline(lm, "meandiff", tmp_path / "out", hook=hook, tier="high", data=DATA)
    _check(lm, tmp_path / "out", meandiff_method(lm, hook, DATA, "high", None).context())


@pytest.mark.slow
def test_surgery_export(tmp_path, reference_lm):
    probe = ProbeConfig(epochs=5)
    export_baseline(reference_lm, "surgery", tmp_path / "out", tier="high", data=DATA, probe=probe)
    method = surgery_method(reference_lm, DATA, tier="high", probe=probe)
    _check(reference_lm, tmp_path / "out", method.context())


def test_tokenizer_that_adds_bos_already_is_saved_as_is(tmp_path):
    lm = tiny_llama()
    lm.tokenizer.add_bos_token = True  # as Llama tokenizers come
    d = write_sae(tmp_path / "sae", lm.d_model, hook="blocks.0.hook_resid_pre")
    spec = SteeringSpec([Intervention(sae=str(d), latents=[1, 4], strength=3.0)])
    assert bos_tokenizer(lm.tokenizer) is lm.tokenizer
    export(lm, spec, tmp_path / "out")
    assert plain(tmp_path / "out", lm.tokenizer.eos_token_id) == ours(lm, Steerer(lm, spec))


def test_a_gpt2_tokenizer_class_is_saved_adding_bos(tmp_path, gpt2):
    """The published GPT-2 folders name ``GPT2Tokenizer``, which rebuilds its backend: BOS must survive that too."""
    from transformers import AutoTokenizer

    from saedetox.steering.checkpoint import save_tokenizer

    gpt2.tokenizer.save_pretrained(tmp_path / "src")
    cfg_path = tmp_path / "src" / "tokenizer_config.json"
    cfg_path.write_text(json.dumps({**json.loads(cfg_path.read_text()), "tokenizer_class": "GPT2Tokenizer"}))
    tok = AutoTokenizer.from_pretrained(tmp_path / "src")
    assert type(tok).__name__ == "GPT2Tokenizer" and tok("She walked")["input_ids"][0] != tok.bos_token_id
    save_tokenizer(tok, tmp_path / "out")
    again = AutoTokenizer.from_pretrained(tmp_path / "out")
    assert type(again).__name__ == "GPT2Tokenizer"
    assert again("She walked")["input_ids"] == [tok.bos_token_id, *tok("She walked")["input_ids"]]
