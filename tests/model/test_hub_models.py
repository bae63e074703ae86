"""The hub mirror's model repos load through transformers exactly as the published ones do, and a file
missing from the local cache is one clear line: a missing shard names itself; a missing Gemma
tokenizer.json (which transformers papers over with a tiny fallback vocabulary) is refused at load."""

from __future__ import annotations

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

import hub_mirror as hm
from saedetox.errors import SaedetoxError
from saedetox.model.load import load_model

GEMMA = "google/gemma-2-2b"


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    """A private mirror with the Gemma-2-2B stand-in only: files are removed here, never in the shared one."""
    return hm.build_mirror(tmp_path_factory.mktemp("mini"), models=(GEMMA,), saes=())


@pytest.mark.parametrize("repo", hm.MODELS)
def test_published_checkpoint_layout_loads_with_no_missing_or_unexpected_keys(hub, repo):
    model, info = AutoModelForCausalLM.from_pretrained(repo, output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    want = {**hm.REAL_CONFIGS[repo], **hm.SMALL_OVERRIDES[repo]}
    assert type(model).__name__ == want["architectures"][0]
    assert model.config.num_hidden_layers == want.get("n_layer", want.get("num_hidden_layers"))
    assert model.config.hidden_size == want.get("n_embd", want.get("hidden_size"))


def test_gpt2_tokenizer_is_the_real_one(hub):
    tok = AutoTokenizer.from_pretrained("gpt2")
    assert tok("hi there")["input_ids"] == [5303, 612] and len(tok) == 50257 and tok.eos_token_id == 50256


def test_gemma_tokenizer_has_gemmas_specials_and_bos(hub):
    tok = AutoTokenizer.from_pretrained(GEMMA)
    ids = tok("hi there")["input_ids"]
    assert ids[0] == tok.bos_token_id == 2 and ids.count(2) == 1 and tok.unk_token_id not in ids
    assert (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 3)
    assert tok.convert_tokens_to_ids(["<start_of_turn>", "<end_of_turn>"]) == [106, 107]
    text = "Hello, wörld! 🙂"  # byte fallback: nothing is lost
    assert tok.decode(tok(text)["input_ids"], skip_special_tokens=True) == text
    lm = load_model(GEMMA, dtype="float32", device="cpu")
    batch = lm.encode_prompts(["hi there", "the library opens"], prepend_bos=True)
    firsts = [row[mask.bool()][0].item() for row, mask in zip(batch["input_ids"], batch["attention_mask"], strict=True)]
    assert firsts == [2, 2] and int((batch["input_ids"] == 2).sum()) == 2  # one BOS each, never two
    assert not lm.uses_layernorm and lm.n_layers == hm.SMALL_OVERRIDES[GEMMA]["num_hidden_layers"]


def test_a_missing_gemma_tokenizer_json_is_refused_not_read_as_unknown_tokens(mini):
    with mini.active(), mini.hidden(GEMMA, "tokenizer.json"):
        fallback = AutoTokenizer.from_pretrained(GEMMA)  # transformers itself says nothing ...
        assert len(fallback) < 200 and fallback("hi there")["input_ids"] == [2, 3]  # ... and reads <unk>
        with pytest.raises(SaedetoxError) as err:
            load_model(GEMMA, dtype="float32", device="cpu")
    msg = str(err.value)
    vocab = hm.GEMMA_STAND_IN_VOCAB
    assert "\n" not in msg and f"has {len(fallback)} tokens but the model's vocabulary has {vocab}" in msg, msg
    with mini.active():
        assert len(load_model(GEMMA, dtype="float32", device="cpu").tokenizer) == vocab  # restored: loads


def test_a_missing_shard_is_named_in_one_line(mini):
    shard = "model-00002-of-00003.safetensors"
    with mini.active(), mini.hidden(GEMMA, shard), pytest.raises(SaedetoxError) as err:
        load_model(GEMMA, dtype="float32", device="cpu")
    msg = str(err.value)
    assert "\n" not in msg and shard in msg and "local Hugging Face cache" in msg, msg
    assert str(mini.cache_dir) in msg and "set HF_HUB_OFFLINE" not in msg
