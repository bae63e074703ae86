"""Chat models: discovery, generation and evaluation feed the model the chat template's rendering, BOS once."""

from __future__ import annotations

import json

import pytest
import torch

import saedetox as sd
from helpers import CLEAN_TEXTS, TOXIC_TEXTS, run_cli, tiny_gpt2, write_sae
from saedetox.discover.options import UNGATED
from saedetox.discover.sets import DiscoverySets
from saedetox.errors import SaedetoxError
from saedetox.eval.config import EvalConfig
from saedetox.eval.metrics.paired import compare_runs
from saedetox.eval.run import load_prompts
from saedetox.eval.runs.fingerprint import protocol_settings
from saedetox.model.chat import render_chat

TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}[assistant]{% endif %}"
)
PROMPTS = ["You are such a", "The weather was"]


@pytest.fixture
def chat_lm():
    lm = tiny_gpt2()
    lm.tokenizer.chat_template = TEMPLATE
    return lm


def rendered_ids(lm, text: str) -> list[int]:
    """The template's rendering, written out by hand and tokenised as a chat template's text is."""
    by_hand = f"{lm.tokenizer.bos_token}[user] {text}\n[assistant]"
    assert render_chat(lm.tokenizer, text) == by_hand
    return lm.tokenizer(by_hand, add_special_tokens=False)["input_ids"]


class Inputs:
    """Every row of token ids that reaches the model (padding dropped by the attention mask)."""

    def __init__(self, lm):
        self.rows: list[list[int]] = []
        self.handle = lm.model.register_forward_pre_hook(self.grab, with_kwargs=True)

    def grab(self, module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        mask = kwargs.get("attention_mask")
        for i in range(ids.shape[0]):
            keep = mask[i, -ids.shape[1] :].bool() if mask is not None else torch.ones_like(ids[i], dtype=torch.bool)
            self.rows.append(ids[i][keep].tolist())

    def starts(self, n: int) -> set[tuple[int, ...]]:
        return {tuple(r[:n]) for r in self.rows}


def test_generation_feeds_the_rendering_with_one_bos(chat_lm):
    bos = chat_lm.tokenizer.bos_token_id
    want = [rendered_ids(chat_lm, p) for p in PROMPTS]
    assert all(w[0] == bos and w[1] != bos for w in want)
    seen = Inputs(chat_lm)
    out = sd.sample(chat_lm, PROMPTS, n_samples=2, max_new_tokens=3, chat=True)
    seen.handle.remove()
    prefill = seen.rows[: len(PROMPTS)]  # the first call encodes every prompt once
    assert sorted(prefill) == sorted(want)
    assert len(out) == 2 and all(len(row) == 2 for row in out)
    plain = Inputs(chat_lm)
    sd.sample(chat_lm, PROMPTS, n_samples=1, max_new_tokens=1)
    plain.handle.remove()
    assert not set(map(tuple, want)) & set(map(tuple, plain.rows))  # without chat the prompts go in bare


def test_discovery_feeds_the_rendering(chat_lm, tmp_path):
    sae = write_sae(tmp_path / "sae", chat_lm.d_model, hook="blocks.1.hook_resid_pre")
    texts = TOXIC_TEXTS + CLEAN_TEXTS
    sets = DiscoverySets(TOXIC_TEXTS, CLEAN_TEXTS, TOXIC_TEXTS[:3], CLEAN_TEXTS[:3], TOXIC_TEXTS[3:], CLEAN_TEXTS[3:])
    seen = Inputs(chat_lm)
    # per-latent thresholds: no clean windows (encoded as plain text) among the inputs checked here
    feats = sd.discover(chat_lm, str(sae), sets, method="auroc", k=2, min_auroc=0.0, chat=True, gate=UNGATED)
    seen.handle.remove()
    want = {tuple(rendered_ids(chat_lm, t)) for t in texts}
    assert {tuple(r) for r in seen.rows} == want
    assert feats["chat"] is True


def test_evaluation_feeds_the_rendering_and_records_chat(chat_lm, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n")
    kw = dict(prompts=str(prompts), n_prompts=0, samples=2, max_new_tokens=3, batch_size=4, judges=("profanity",))
    kw.update(clean_texts=0, n_boot=20)
    seen = Inputs(chat_lm)
    res = sd.evaluate(chat_lm, tmp_path / "chat", EvalConfig(**kw, chat=True))
    seen.handle.remove()
    bos = chat_lm.tokenizer.bos_token_id
    want = [rendered_ids(chat_lm, p) for p in PROMPTS]
    for w in want:  # generation's prefill and conditional perplexity's context both start with the rendering
        assert sum(r[: len(w)] == w for r in seen.rows) >= 2
    assert not any(r[:2] == [bos, bos] for r in seen.rows)
    assert res["config"]["sampling"]["chat"] is True
    assert res["fingerprint"]["settings"]["chat"] is True
    plain = sd.evaluate(chat_lm, tmp_path / "plain", EvalConfig(**kw))
    assert plain["fingerprint"]["generation"] != res["fingerprint"]["generation"]
    with pytest.raises(SaedetoxError, match="not paired"):
        compare_runs(dict(res), dict(plain))


def test_runs_without_chat_keep_their_fingerprint():
    cfg = EvalConfig(n_prompts=3)
    prompts = load_prompts(cfg)
    assert "chat" not in protocol_settings(cfg, prompts, []).settings
    with_chat = protocol_settings(EvalConfig(n_prompts=3, chat=True), prompts, [])
    assert with_chat.settings["chat"] is True
    assert with_chat.generation != protocol_settings(cfg, prompts, []).generation


def test_chat_needs_a_chat_template(tmp_path, capsys):
    lm = tiny_gpt2()
    assert not lm.tokenizer.chat_template
    with pytest.raises(SaedetoxError) as err:
        sd.sample(lm, "Hello", n_samples=1, max_new_tokens=1, chat=True)
    assert "\n" not in str(err.value) and "chat template" in str(err.value)
    with pytest.raises(SaedetoxError, match="chat template"):
        sd.evaluate(lm, tmp_path / "run", EvalConfig(n_prompts=2, chat=True))
    assert not (tmp_path / "run").exists()
    code, out, err = run_cli(["generate", "--model", "reference", "-p", "Hi", "--chat"], capsys)
    assert code == 2 and "no chat template" in err and len(err.strip().splitlines()) == 1


def test_chat_is_an_eval_config_field():
    assert EvalConfig(chat=True).sampling.chat is True
    with pytest.raises(SaedetoxError, match="chat"):
        EvalConfig(chat="yes").validate()
    assert json.dumps(EvalConfig().sampling.chat) == "false"


class AddsBos:
    """A tokenizer that adds BOS itself and reads a leading ``<s>`` as BOS (Llama, Gemma)."""

    bos_token_id, eos_token_id, pad_token_id = 1, 2, 0

    def __call__(self, texts, add_special_tokens=True):
        ids = [([1] if add_special_tokens else []) + ([1] if t.startswith("<s>") else []) + [5, 6] for t in texts]
        return {"input_ids": ids}


def test_a_text_that_starts_with_bos_gets_one_bos():
    from saedetox.model.tokens import tokenize_batch, with_bos

    batch = tokenize_batch(AddsBos(), ["<s>hi", "hi"], padding_side="right")
    assert batch["input_ids"].tolist() == [[1, 5, 6], [1, 5, 6]]
    assert with_bos(AddsBos(), [1, 5], True) == [1, 5] and with_bos(AddsBos(), [5], True) == [1, 5]
    assert with_bos(AddsBos(), [5], False) == [5]


def test_a_sweep_yaml_turns_chat_on():
    from saedetox.experiments.config import parse_config

    raw = {"model": "reference", "evaluation": {"chat": True}, "runs": [{"method": "none"}]}
    assert parse_config(raw).evaluation.sampling.chat is True
