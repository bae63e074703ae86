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


def test_processors_see_the_model_s_own_scores_and_temperature_follows(gpt2):
    """The cap acts before temperature (as vLLM orders its logits processors): a processor gets the raw logits."""
    seen = []

    def spy(step, ids, mask, scores):
        if step == 0:
            seen.extend(scores.clone())
        return scores

    from saedetox.model.logits import processing_logits

    with processing_logits(gpt2.model, spy):
        got = _tokens(gpt2, temperature=0.5)
    assert got == _tokens(gpt2, temperature=0.5)  # an identity processor changes nothing
    enc = gpt2.tokenizer([gpt2.tokenizer.bos_token + PROMPTS[0]], return_tensors="pt")
    with torch.no_grad():
        raw = gpt2.model(**enc).logits[0, -1]
    assert any(torch.allclose(row, raw, atol=1e-4) for row in seen), "the processor saw temperature-scaled scores"
    assert not any(torch.allclose(row, raw / 0.5, atol=1e-4) for row in seen)


def _toy_trajectories(n_groups=12):
    """Prompt g: token 5 then 20 + g; its toxic continuation ends in token 7, its clean one in token 8."""
    out = []
    for g in range(n_groups):
        out.append(vt.Trajectory([1, 5, 20 + g, 7], -1.0, g))
        out.append(vt.Trajectory([1, 5, 20 + g, 8], 0.0, g))
    return out


def test_held_out_split_keeps_each_prompt_together_and_auroc_is_the_pair_count(gpt2):
    trajs = _toy_trajectories()
    train, held = vt.split_by_prompt(trajs, 0.25, seed=1)
    assert len(held) == 6 and len(train) == 18  # 3 of 12 prompts, both trajectories each
    assert not {t.group for t in train} & {t.group for t in held}
    vm = zero_value_model(gpt2)
    with torch.no_grad():
        vm.head.bias[7], vm.head.bias[8] = -0.6, -0.7  # the clean ending looks worse: AUROC 0
    dev = torch.device("cpu")
    assert vt.terminal_values(vm, held, 0, dev, 4) == pytest.approx([-0.6, -0.7] * 3)
    assert vt.held_out_auroc(vm, held, 0, dev, 4) == 0.0
    with torch.no_grad():
        vm.head.bias[8] = -0.6  # every pair tied: AUROC 0.5
    assert vt.held_out_auroc(vm, held, 0, dev, 4) == 0.5
    assert vt.held_out_auroc(vm, held[::2], 0, dev, 4) is None  # one class only


def test_training_stops_on_the_held_out_loss_and_keeps_the_best_epoch(gpt2):
    trajs = _toy_trajectories(20)
    cfg = ValueTrainConfig(epochs=6, lr=3e-2, batch_size=4, val_share=0.25, patience=1, warmup=0.0)
    vm = zero_value_model(gpt2)
    rec = vt.train_value_model(vm, trajs, cfg, pad=0)
    curve = rec["val_loss_curve"]
    assert rec["val_loss"] == min(curve) and rec["best_epoch"] == curve.index(min(curve)) + 1
    assert rec["epochs_run"] == len(curve) and (len(curve) == 6 or curve[-1] >= min(curve))
    _, held = vt.split_by_prompt(trajs, 0.25, 0)
    assert vt._mean_loss(vm, held, 0, torch.device("cpu"), cfg) == pytest.approx(rec["val_loss"])  # best kept
    # the constant prediction: every pair of the held-out toxic trajectories targets −1, the clean ones 0
    share = sum(t.reward < 0 for t in trajs if t not in held) / (len(trajs) - len(held))
    assert rec["val_loss_constant"] == pytest.approx(0.5 * (1 - share) ** 2 + 0.5 * share**2, abs=1e-6)
    assert rec["val_auroc"] == 1.0  # the endings 7 / 8 are learnt from the training prompts


def test_training_judge_default_avoids_the_evaluation_judges_and_unknown_ones_are_refused(gpt2):
    from saedetox.methods.registry import check_options, train_judge_for

    assert train_judge_for(None, ("probe",)) == "profanity"
    assert train_judge_for(None, ("profanity",)) == "probe"
    assert train_judge_for(None, ("profanity", "probe")) == "profanity"  # all taken: the first (evaluate warns)
    assert train_judge_for("Detoxify", ("probe",)) == "detoxify"
    with pytest.raises(SaedetoxError, match="Unknown training judge 'nope'"):
        train_judge_for("nope")
    with pytest.raises(SaedetoxError, match="learns from no judge"):
        check_options("meandiff", train_judge="probe")
    with pytest.raises(SaedetoxError, match="Unknown training judge"):
        build_method(gpt2, "rectification", train_judge="nope")


def test_replayed_statistics_equal_those_of_the_decode_loop(gpt2):
    """On continuations that never stop early, the teacher-forced replay counts what the decode loop counted."""
    from saedetox.eval.sampler.vllm import encode_prompts
    from saedetox.methods.value_replay import replay_rectification, step_counts

    vm = zero_value_model(gpt2)
    with torch.no_grad():
        torch.manual_seed(0)
        vm.head.weight.normal_(0, 0.3)
    method = rectification_method(gpt2, "medium", value_model=vm)
    cfg = dict(n_samples=2, max_new_tokens=6, seed=5, batch_size=8)
    with method.context():
        rows = sample(gpt2, PROMPTS, **cfg)
    live = method.stats()["rectification"]
    conts = [[s.token_ids for s in row] for row in rows]
    flat = [c for row in conts for c in row]
    assert step_counts(flat, 6) == [6] * len(flat), "a continuation stopped early: pick another seed"
    from saedetox.eval.sampler.settings import SamplingConfig

    ids = encode_prompts(gpt2, PROMPTS, SamplingConfig(**cfg))
    method.replay(ids, conts, 6)
    again = method.stats()["rectification"]
    assert again["rows"] == live["rows"] == len(flat) * 6
    assert again["changed_share"] == pytest.approx(live["changed_share"], abs=1 / live["rows"])
    assert again["mean_removed_mass"] == pytest.approx(live["mean_removed_mass"], rel=1e-3)
    assert 0 < live["changed_share"] <= 1
    processor = ValueProcessor(vm, 0.1)
    stats = replay_rectification(gpt2, processor, ids, conts, 6)  # the function itself, on its own processor
    assert stats is processor.stats and stats.summary() == again


def test_cli_refuses_an_unknown_or_misplaced_training_judge_in_one_line(tmp_path, capsys):
    from helpers import run_cli

    base = ["evaluate", "--out", tmp_path / "r", "--n-prompts", 2, "--judges", "probe"]
    code, _, err = run_cli([*base, "--method", "rectification", "--train-judge", "nope"], capsys)
    assert code == 2 and "Unknown training judge 'nope'" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = run_cli([*base, "--method", "meandiff", "--train-judge", "probe"], capsys)
    assert code == 2 and "learns from no judge" in err
    assert not (tmp_path / "r").exists()


def test_sample_method_on_hf_is_sampling_under_the_method_s_context(gpt2):
    from saedetox.eval.runs.generation import sample_method
    from saedetox.eval.sampler.settings import SamplingConfig

    vm = zero_value_model(gpt2)
    with torch.no_grad():
        vm.head.bias[_tokens(gpt2)[0][0][0]] = -1.0
    method = rectification_method(gpt2, "low", value_model=vm)
    cfg = SamplingConfig(n_samples=3, max_new_tokens=8, seed=3, batch_size=6)
    got = [[s.token_ids for s in row] for row in sample_method(gpt2, method, PROMPTS, cfg)]
    assert got == _tokens(gpt2, method) and got != _tokens(gpt2)
