"""Stale results: every setting that changes a number is in the run's fingerprint; a changed one is refused
with the differing keys unless ``overwrite``; a renamed or copied run folder resumes; judges added later
rescore the same continuations; metrics computed with other settings are never returned."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from helpers import tiny_gpt2, write_sae
from saedetox.errors import SaedetoxError, StaleRunError
from saedetox.eval.config import EvalConfig
from saedetox.eval.run import evaluate, load_prompts
from saedetox.eval.runs.fingerprint import differences, protocol_settings
from saedetox.eval.runs.identity import model_identity, sae_identity
from saedetox.methods.registry import build_method
from saedetox.sae.load import load_sae
from saedetox.steering.spec import Intervention, SteeringSpec


def cfg(**kw):
    base = dict(n_prompts=4, samples=2, max_new_tokens=3, batch_size=4, clean_texts=1, judges=("profanity",), n_boot=20)
    base.update(kw)
    return EvalConfig(**base)


def sae_method(lm, sae, latents=(1, 2)):
    return build_method(lm, "sae", SteeringSpec([Intervention(sae=str(sae), latents=list(latents), tier="high")]))


@pytest.fixture(scope="module")
def lm():
    return tiny_gpt2()


@pytest.fixture()
def done(tmp_path, lm):
    run = tmp_path / "run"
    evaluate(lm, run, cfg())
    return run


@pytest.mark.parametrize(
    "change,key",
    [
        (dict(clean_texts=2), "clean_texts=1, now 2"),
        (dict(clean_texts=0), "clean_texts=1, now 0"),
        (dict(threshold=0.6), "threshold=0.5, now 0.6"),
        (dict(n_boot=30), "n_boot=20, now 30"),
        (dict(samples=3), "samples=2, now 3"),
        (dict(top_p=0.5), "top_p=0.9, now 0.5"),
        (dict(temperature=0.7), "temperature=1.0, now 0.7"),
        (dict(max_new_tokens=4), "max_new_tokens=3, now 4"),
        (dict(batch_size=2), "batch_size=4, now 2"),
        (dict(seed=1), "seed=0, now 1"),
        (dict(ppl_batch_size=8), "ppl_batch_size=32, now 8"),
        (dict(n_prompts=3), "n_prompts=4, now 3"),
        (dict(prompts="nontoxic"), "prompts=challenging (4 prompts)"),
        (dict(capability=("blimp",)), 'capability=[], now ["blimp"]'),
    ],
)
def test_each_changed_setting_is_refused_by_name(done, lm, change, key):
    with pytest.raises(StaleRunError) as err:
        evaluate(lm, done, cfg(**change))
    assert key in str(err.value) and "pass overwrite=True" in str(err.value)


def test_model_ref_model_and_method_are_in_the_fingerprint(done, lm, sae_dir):
    other = tiny_gpt2()
    with torch.no_grad():
        other.model.transformer.h[1].mlp.c_fc.weight[3, 5] += 1e-3  # one weight of one row
    with pytest.raises(StaleRunError, match=r"model=tiny-gpt2 \("):
        evaluate(other, done, cfg())
    with pytest.raises(StaleRunError, match=r"ref_model=null, now tiny-gpt2"):
        evaluate(lm, done, cfg(), ref_lm=tiny_gpt2(seed=1))
    with pytest.raises(StaleRunError, match="method=none, now sae"):
        evaluate(lm, done, cfg(), sae_method(lm, sae_dir))


def test_sae_and_features_content_count_not_their_paths(tmp_path, lm):
    sae = write_sae(tmp_path / "sae", lm.d_model, d_sae=64, hook="blocks.1.hook_resid_pre")
    run = tmp_path / "run"
    first = evaluate(lm, run, cfg(), sae_method(lm, sae))
    with pytest.raises(StaleRunError, match=r"method.latents=\[1, 2\], now \[1, 3\]"):
        evaluate(lm, run, cfg(), sae_method(lm, sae, (1, 3)))
    moved = shutil.copytree(sae, tmp_path / "moved")  # the same SAE elsewhere: the same run
    again = evaluate(lm, run, cfg(), sae_method(lm, moved))
    assert again["fingerprint"]["hash"] == first["fingerprint"]["hash"]
    write_sae(sae, lm.d_model, d_sae=64, hook="blocks.1.hook_resid_pre", seed=7)  # same path, other weights
    with pytest.raises(StaleRunError, match="method.sae.0="):
        evaluate(lm, run, cfg(), sae_method(lm, sae))


def test_prompt_file_content_counts_not_its_path(tmp_path, lm):
    prompts = tmp_path / "p.txt"
    prompts.write_text("The weather is\nMy neighbour said\n")
    run = tmp_path / "run"
    evaluate(lm, run, cfg(prompts=str(prompts), n_prompts=0))
    prompts.write_text("The weather is\nMy neighbour shouted\n")
    with pytest.raises(StaleRunError, match="prompts="):
        evaluate(lm, run, cfg(prompts=str(prompts), n_prompts=0))


def test_overwrite_keeps_continuations_only_when_they_are_identical(done, lm):
    gen = done / "generations.jsonl"
    stamp = gen.stat().st_mtime_ns
    res = evaluate(lm, done, cfg(clean_texts=2), overwrite=True)
    assert gen.stat().st_mtime_ns == stamp  # clean_texts does not change the continuations
    assert res["fingerprint"]["settings"]["clean_texts"] == 2
    res = evaluate(lm, done, cfg(samples=3), overwrite=True)
    assert res["samples_per_prompt"] == 3 and all(len(json.loads(x)["continuations"]) == 3 for x in gen.open())


def test_judges_added_later_rescore_the_same_continuations(done, lm):
    gen = done / "generations.jsonl"
    stamp = gen.stat().st_mtime_ns
    res = evaluate(lm, done, cfg(judges=("profanity", "probe")))
    assert set(res["toxicity"]) == {"profanity", "probe"} and gen.stat().st_mtime_ns == stamp
    fresh = evaluate(lm, done.parent / "fresh", cfg(judges=("profanity", "probe")))
    assert res["toxicity"] == fresh["toxicity"]


def test_renamed_or_copied_run_folder_resumes(done, lm):
    first = json.loads((done / "metrics.json").read_text())
    moved = done.parent / "renamed"
    shutil.copytree(done, moved)
    res = evaluate(lm, moved, cfg())
    assert res["config"]["run"] == "renamed" and res["toxicity"] == first["toxicity"]
    (moved / "metrics.json").unlink()  # an unfinished copy resumes without regenerating
    stamp = (moved / "generations.jsonl").stat().st_mtime_ns
    again = evaluate(lm, moved, cfg())
    assert (moved / "generations.jsonl").stat().st_mtime_ns == stamp and again["toxicity"] == first["toxicity"]


def test_metrics_with_another_fingerprint_are_never_returned(done, lm):
    metrics = done / "metrics.json"
    obj = json.loads(metrics.read_text())
    obj["fingerprint"]["hash"] = "0" * 16
    obj["toxicity"]["profanity"]["tox_prob"] = 0.999  # a stale number that must not come back
    metrics.write_text(json.dumps(obj))
    res = evaluate(lm, done, cfg())
    assert res["toxicity"]["profanity"]["tox_prob"] != 0.999 and res["fingerprint"]["hash"] != "0" * 16


def test_folder_from_an_older_saedetox_is_refused_then_overwritten(done, lm):
    config = done / "config.json"
    config.write_text(json.dumps({"fingerprint": "cc713139d124dcbe", "run": "run"}))
    with pytest.raises(SaedetoxError, match="records no settings"):
        evaluate(lm, done, cfg())
    assert evaluate(lm, done, cfg(), overwrite=True)["fingerprint"]["settings"]["samples"] == 2


def test_capability_limit_and_tasks_are_settings(lm):
    prompts = load_prompts(cfg())
    a = protocol_settings(cfg(capability=("blimp",), capability_limit=5), prompts, [])
    b = protocol_settings(cfg(capability=("blimp",), capability_limit=6), prompts, [])
    assert differences(a, b) == ["capability_limit=5, now 6"]
    c = protocol_settings(cfg(capability=("blimp", "piqa"), capability_limit=5), prompts, [])
    assert any(d.startswith("capability=") for d in differences(a, c))


def test_identities_follow_content_not_location(tmp_path, lm):
    lm.model.save_pretrained(tmp_path / "a")
    lm.tokenizer.save_pretrained(tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    from saedetox.model.load import load_model

    a, b = load_model(str(tmp_path / "a"), device="cpu"), load_model(str(tmp_path / "b"), device="cpu")
    assert model_identity(a) == model_identity(b) == model_identity(lm)
    assert model_identity(load_model(str(tmp_path / "a"), dtype="bfloat16", device="cpu")) != model_identity(a)
    s1 = write_sae(tmp_path / "s1", lm.d_model)
    s2 = shutil.copytree(s1, tmp_path / "s2")
    assert sae_identity(load_sae(str(s1))) == sae_identity(load_sae(str(s2)))
    assert sae_identity(load_sae(str(write_sae(tmp_path / "s3", lm.d_model, seed=3)))) != sae_identity(
        load_sae(str(s1))
    )


def test_an_attack_and_its_pool_enter_the_fingerprint():
    from saedetox.data.attacks import attack_identity

    prompts = load_prompts(cfg(n_prompts=3))
    clean = protocol_settings(cfg(n_prompts=3), prompts, [])
    assert "attack" not in clean.settings and "attack.pool" not in clean.settings  # clean runs keep theirs
    seen = {clean.generation}
    for name in ("fewshot", "override", "dialogue"):
        fp = protocol_settings(cfg(n_prompts=3, attack=name), prompts, [])
        assert fp.settings["attack"] == name and fp.settings["attack.pool"] == attack_identity(name)
        seen.add(fp.generation)  # the continuations depend on it: never reused across attacks
    assert len(seen) == 4
    with pytest.raises(SaedetoxError, match="Unknown attack"):
        cfg(attack="nope").validate()
