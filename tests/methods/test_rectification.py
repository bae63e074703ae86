"""The ``rectification`` baseline on a tiny GPT-2: decoding, the value model's cache, its labels, its registration."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

import saedetox.methods.rectification as rect
import saedetox.methods.value_training as vt
from saedetox.errors import SaedetoxError
from saedetox.eval.config import EvalConfig
from saedetox.eval.run import evaluate
from saedetox.eval.sampler.sampling import sample
from saedetox.methods.rectification import rectification_method, zero_value_model
from saedetox.methods.registry import build_method, get_method
from saedetox.methods.value_model import ValueProcessor, load_value_model, value_identity
from saedetox.methods.value_training import ValueTrainConfig, labelled_trajectories, value_loss
from saedetox.model.logits import logits_processors

PROMPTS = ["the cat sat", "you are a", "what a lovely", "go away you"]


def _tokens(lm, method=None, **kw):
    opts = dict(n_samples=3, max_new_tokens=8, seed=3, batch_size=6, **kw)
    if method is None:
        return [[s.token_ids for s in row] for row in sample(lm, PROMPTS, **opts)]
    with method.context():
        return [[s.token_ids for s in row] for row in sample(lm, PROMPTS, **opts)]


def test_weakest_tier_with_a_zero_value_model_is_the_unsteered_model_token_for_token(gpt2):
    method = rectification_method(gpt2, "low", value_model=zero_value_model(gpt2))
    assert _tokens(gpt2, method) == _tokens(gpt2)
    assert _tokens(gpt2, method, temperature=0.7, top_p=0.8) == _tokens(gpt2, temperature=0.7, top_p=0.8)
    assert logits_processors(gpt2.model) == ()  # detached after the run


def test_a_certain_dead_end_token_is_never_sampled(gpt2):
    base = _tokens(gpt2, top_p=1.0)
    counts = np.bincount([t for row in base for s in row for t in s], minlength=gpt2.model.config.vocab_size)
    banned = int(counts.argmax())  # the token the unsteered model samples most
    vm = zero_value_model(gpt2)
    with torch.no_grad():
        vm.head.bias[banned] = -1.0  # Q_D(s, banned) = −1 in every state
    method = rectification_method(gpt2, "low", value_model=vm)
    out = _tokens(gpt2, method, top_p=1.0)
    assert counts[banned] > 0
    assert all(banned not in s for row in out for s in row)
    assert method.stats()["rectification"]["changed_share"] > 0


def test_the_processor_cache_gives_the_values_of_a_full_pass(gpt2):
    vm = zero_value_model(gpt2, n_layers=2)
    with torch.no_grad():
        vm.head.weight.normal_(0, 0.5)
    proc = ValueProcessor(vm, 0.0)
    ids = torch.tensor([[0, 0, 5, 7, 9], [0, 3, 4, 8, 2]])
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    proc.q_values(ids[:, :3], mask[:, :3])
    for t in (4, 5):
        step = proc.q_values(ids[:, :t], mask[:, :t])
        full = vm(ids[:, :t], mask[:, :t])[:, -1]
        assert torch.allclose(step, full, atol=1e-5)


class _SpyJudge:
    name = "spy"

    def __init__(self):
        self.seen: list[str] = []

    def score(self, texts):
        self.seen += list(texts)
        return np.array([0.9 if i % 3 == 0 else 0.1 for i in range(len(texts))])


def test_training_labels_come_from_the_declared_judge(gpt2, monkeypatch):
    spy, asked = _SpyJudge(), []
    monkeypatch.setattr(vt, "get_judge", lambda name: asked.append(name) or spy)
    cfg = ValueTrainConfig(judge="detoxify", samples=3, max_new_tokens=5)
    trajs = labelled_trajectories(gpt2, PROMPTS, cfg)
    assert asked == ["detoxify"]
    assert len(spy.seen) == len(PROMPTS) * 3
    # prompt i: samples 3i..3i+2, the first toxic (0.9): each prompt keeps one toxic and one clean
    assert [t.reward for t in trajs] == [-1.0, 0.0] * len(PROMPTS)


def test_value_loss_against_a_hand_computation(gpt2):
    vm = zero_value_model(gpt2)
    b = torch.zeros(gpt2.model.config.vocab_size)
    b[[5, 6, 7]] = torch.tensor([-0.5, -0.25, 0.5])
    with torch.no_grad():
        vm.head.bias.copy_(b)  # Q(s, a) = b[a] in every state
    ids = torch.tensor([[1, 5, 6, 7], [1, 6, 0, 0]])
    batch = (ids, torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]]), torch.tensor([-1.0, 0.0]), torch.tensor([4, 2]))
    # pairs: row 0 actions 5, 6, 7 (targets −1); row 1 action 6 (target 0)
    mc = ((-0.5 + 1) ** 2 + (-0.25 + 1) ** 2 + (0.5 + 1) ** 2 + 0.25**2) / 4
    assert float(value_loss(vm, batch, "mc")) == pytest.approx(mc)
    # SARSA: row 0 targets clip(b[6]) = −0.25, clip(b[7]) = 0, then the reward −1; row 1: its reward 0
    sarsa = ((-0.5 + 0.25) ** 2 + (-0.25 - 0) ** 2 + (0.5 + 1) ** 2 + 0.25**2) / 4
    assert float(value_loss(vm, batch, "sarsa")) == pytest.approx(sarsa)


def test_value_model_is_trained_once_cached_and_recorded(gpt2, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(rect, "training_prompts", lambda data_dir, n, seed=0: PROMPTS[:n])
    calls = []

    def spy_labels(lm, prompts, cfg):
        calls.append(cfg.judge)
        return [vt.Trajectory([1, 5, 6, 7], -1.0), vt.Trajectory([1, 8, 9], 0.0)] * 4

    monkeypatch.setattr(rect, "labelled_trajectories", spy_labels)
    cfg = ValueTrainConfig(n_prompts=4, epochs=2, batch_size=4, val_share=0.25)
    vm, meta = rect.trained_value_model(gpt2, cfg)
    again, _ = rect.trained_value_model(gpt2, cfg)
    assert calls == ["profanity"]  # the second call read the cache
    assert value_identity(vm) == value_identity(again)
    (saved,) = (tmp_path / "saedetox" / "rectification").glob("*.pt")
    assert value_identity(load_value_model(saved)[0]) == value_identity(vm)
    assert meta["record"]["toxic_share"] == 0.5 and meta["train"]["judge"] == "profanity"
    assert float(vm(torch.tensor([[1, 5]]), torch.ones(1, 2))[0, 0, 5]) < 0  # learnt: 5 after 1 ends toxic

    method = build_method(gpt2, "rectification", tier="high", train_judge="detoxify")
    assert calls == ["profanity", "detoxify"]  # another judge: another value model, trained with it
    assert method.details["tier"] == "high" and method.judges == ("detoxify",)
    details = method.details["rectification"]
    assert details["epsilon"] == 0.3 and details["train_judge"] == "detoxify"
    assert details["training"]["judge"] == "detoxify" and len(details["value_model"]) == 16


def test_registered_as_a_strength_baseline_without_steering_options(gpt2):
    info = get_method("rectification")
    assert info.strength and not info.steering and info.family == "baseline"
    with pytest.raises(SaedetoxError, match="tier"):
        rectification_method(gpt2, "extreme", value_model=zero_value_model(gpt2))


def test_evaluate_warns_when_the_training_judge_also_scores_and_records_it(gpt2, tmp_path, monkeypatch):
    said = []
    monkeypatch.setattr("saedetox.eval.run.warn", said.append)
    method = rectification_method(gpt2, "low", value_model=zero_value_model(gpt2))
    method.judges = ("profanity",)
    method.details["rectification"]["train_judge"] = "profanity"
    cfg = EvalConfig(n_prompts=3, samples=1, max_new_tokens=3, judges=("profanity",), clean_texts=0, n_boot=20)
    res = evaluate(gpt2, tmp_path / "r", cfg, method)
    assert any("judge profanity" in s for s in said)
    assert res["config"]["rectification"]["train_judge"] == "profanity"
    assert res["steering"]["rectification"]["rows"] > 0
    said.clear()
    evaluate(gpt2, tmp_path / "r2", replace(cfg, judges=("probe",)), method)
    assert not said
