"""Dry-run agreement of model, SAE, hook and features, offline: refused in one line, or said to be unchecked."""

from __future__ import annotations

import json

import huggingface_hub.constants as hub
import pytest

from helpers import write_sae
from saedetox.errors import SaedetoxError
from saedetox.experiments.compatibility import check_agreement, check_features_file, sae_header
from saedetox.experiments.config import parse_config
from saedetox.experiments.sweep import dry_run

GEMMA = "gemma-scope-2b-pt-res-canonical/layer_12/width_16k/canonical"
GPT2_JB = "gpt2-small-res-jb/blocks.6.hook_resid_pre"


def fake_cache(root, repo, config):
    """A hub cache holding only ``repo``'s config.json, laid out as huggingface_hub reads it."""
    folder = root / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("abc123")
    snap = folder / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text(json.dumps(config))


def test_registry_model_must_match(monkeypatch, tmp_path):
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(SaedetoxError, match=r"trained on gemma-2-2b \(google/gemma-2-2b\), but the model is gpt2"):
        check_agreement("gpt2", GEMMA)
    with pytest.raises(SaedetoxError, match="not on the reference model"):
        check_agreement("reference", GPT2_JB)
    lines = check_agreement("openai-community/gpt2", GPT2_JB)  # an org-prefixed name of the same model
    assert any("matches the model" in x for x in lines)
    assert any("not checked offline" in x for x in lines)  # neither config is cached: said, not guessed


def test_gemma_scope_width_and_hook_known_without_download(monkeypatch, tmp_path):
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path))
    head = sae_header(GEMMA)
    assert head["d_in"] == 2304 and head["d_sae"] == 16384 and head["hook"] == "blocks.12.hook_resid_post"
    fake_cache(tmp_path, "google/gemma-2-2b", {"model_type": "gemma2", "hidden_size": 2304, "num_hidden_layers": 26})
    lines = check_agreement("google/gemma-2-2b", GEMMA)
    assert f"sae {GEMMA}: d_in 2304 = model width" in lines
    assert "hook blocks.12.hook_resid_post: layer exists in google/gemma-2-2b" in lines
    with pytest.raises(SaedetoxError, match="names layer 30"):
        check_agreement("google/gemma-2-2b", GEMMA, hook="blocks.30.hook_resid_post")


def test_cached_config_reveals_a_width_mismatch(monkeypatch, tmp_path):
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path))
    fake_cache(tmp_path, "google/gemma-2-2b", {"model_type": "gemma2", "hidden_size": 2048, "num_hidden_layers": 26})
    with pytest.raises(SaedetoxError, match="d_in 2304 but google/gemma-2-2b has width 2048"):
        check_agreement("google/gemma-2-2b", GEMMA)


def test_local_sae_and_model(tmp_path, gpt2):
    gpt2.model.save_pretrained(tmp_path / "m")
    sae = write_sae(tmp_path / "sae", gpt2.d_model, hook="blocks.2.hook_resid_pre")
    assert "hook blocks.2.hook_resid_pre: layer exists in {}".format(tmp_path / "m") in check_agreement(
        str(tmp_path / "m"), str(sae)
    )
    with pytest.raises(SaedetoxError, match="names layer 7"):
        check_agreement(str(tmp_path / "m"), str(sae), hook="blocks.7.hook_mlp_out")
    with pytest.raises(SaedetoxError, match="Unknown hook"):
        check_agreement(str(tmp_path / "m"), str(sae), hook="blocks.1.hook_z")


def test_features_recorded_for_another_sae(tmp_path, gpt2):
    a = write_sae(tmp_path / "a", gpt2.d_model, d_sae=64)
    b = write_sae(tmp_path / "b", gpt2.d_model, d_sae=64, seed=1)
    c = write_sae(tmp_path / "c", gpt2.d_model, d_sae=128)
    copy = tmp_path / "copy"
    import shutil

    shutil.copytree(a, copy)
    feats = tmp_path / "f.json"
    feats.write_text(json.dumps({"sae": str(a), "d_sae": 64, "selected": [1]}))
    check_features_file(feats, str(a))
    check_features_file(feats, str(copy))  # the same SAE in another folder
    with pytest.raises(SaedetoxError, match="recorded for SAE"):
        check_features_file(feats, str(b))
    with pytest.raises(SaedetoxError, match="d_sae 64.*d_sae 128"):
        check_features_file(feats, str(c))
    feats.write_text(json.dumps({"sae": "reference", "d_sae": 2048, "selected": [1]}))
    check_features_file(feats, "reference/width_2048")  # an alias of the same reference SAE
    with pytest.raises(SaedetoxError, match="d_sae 2048"):
        check_features_file(feats, "reference/width_1024")


def test_dry_run_and_real_run_share_the_checks(tmp_path):
    raw = {"features": [1], "runs": [{"method": "none"}], "evaluation": {"samples": 0}}
    with pytest.raises(SaedetoxError, match="samples"):
        dry_run(parse_config(raw))
    from saedetox.experiments.sweep import run_sweep

    with pytest.raises(SaedetoxError, match="samples"):
        run_sweep(parse_config(raw), tmp_path / "out")
    assert not (tmp_path / "out").exists()
    ok = {"features": [1], "runs": [{"method": "none"}], "evaluation": {"n_prompts": 2, "clean_texts": 0}}
    lines = dry_run(parse_config(ok))
    assert any(x.startswith("model reference: reference world") for x in lines) and lines[-1].startswith("1 runs")


def test_dry_run_accepts_adaptive_sae_runs_and_needs_a_detector_in_a_features_file(tmp_path):
    """Adaptive runs take their detector from discovery at run time; the dry run used to refuse them."""
    base = {"evaluation": {"n_prompts": 2, "clean_texts": 0}}
    runs = [{"method": "sae", "modes": ["adaptive"], "push": [0.1]}]
    lines = dry_run(parse_config(base | {"discovery": {"k": 2}, "runs": runs}))
    assert lines[-1] == "1 runs planned: sae-adaptive-p0.1"
    feats = tmp_path / "features.json"
    feats.write_text(json.dumps({"selected": [1, 2]}))
    with pytest.raises(SaedetoxError, match="need a detector"):
        dry_run(parse_config(base | {"features": str(feats), "runs": runs}))
