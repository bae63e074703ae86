"""SAE loading, conventions and the fast latent paths."""

from __future__ import annotations

import pytest
import torch

from helpers import tiny_llama, write_sae
from saedetox.errors import SaedetoxError
from saedetox.model.capture import capture
from saedetox.sae.load import load_sae, split_registry_name, wants_centring

ARCHS = {"standard": {}, "jumprelu": {}, "topk": {"k": 8}, "gated": {}}


@pytest.mark.parametrize("arch", list(ARCHS))
def test_latent_acts_match_sae_lens_encode(tmp_path, gpt2, arch):
    d = write_sae(tmp_path / arch, gpt2.d_model, arch=arch, **ARCHS[arch])
    sae = load_sae(str(d), model_uses_layernorm=True)
    assert sae.architecture == arch
    x = capture(gpt2, ["The library opens at nine in the morning."], sae.hook_name)[0]
    idx = torch.tensor([0, 3, 9, 40])
    full = sae.sae.encode(sae.prepare(x))[..., idx]
    assert torch.allclose(sae.latent_acts(x, idx), full, atol=1e-6)
    assert (full > 0).any()


def test_centring_follows_metadata_and_norm_type(tmp_path, gpt2):
    centred = load_sae(str(write_sae(tmp_path / "c", gpt2.d_model, center=True)), model_uses_layernorm=True)
    raw = load_sae(str(write_sae(tmp_path / "r", gpt2.d_model)), model_uses_layernorm=True)
    assert centred.center and not raw.center
    x = torch.randn(4, gpt2.d_model) + 3.0
    assert torch.allclose(centred.encode(x), centred.sae.encode(x - x.mean(-1, keepdim=True)))
    assert torch.allclose(raw.encode(x), raw.sae.encode(x))
    # RMSNorm models are never centred, whatever the metadata says
    rms = load_sae(str(write_sae(tmp_path / "m", gpt2.d_model, center=True)), model_uses_layernorm=False)
    assert not rms.center


def test_centring_defaults():
    assert wants_centring({"model_class_name": "HookedTransformer"}, True)
    assert wants_centring({"model_from_pretrained_kwargs": {"center_writing_weights": True}}, True)
    assert not wants_centring({"model_class_name": "AutoModelForCausalLM"}, True)
    assert not wants_centring({"model_from_pretrained_kwargs": {"center_writing_weights": False}}, True)


def test_metadata_is_read(sae_dir):
    sae = load_sae(str(sae_dir))
    assert sae.hook_name == "blocks.1.hook_resid_pre" and sae.prepend_bos and sae.model_name == "tiny"
    assert sae.info()["d_sae"] == 64


def test_registry_names_are_validated_with_close_matches():
    assert split_registry_name("gpt2-small-res-jb/blocks.6.hook_resid_pre") == (
        "gpt2-small-res-jb",
        "blocks.6.hook_resid_pre",
    )
    with pytest.raises(SaedetoxError, match="gpt2-small-res-jb") as err:
        split_registry_name("gpt2-small-res-j/blocks.6.hook_resid_pre")
    assert "Unknown SAE release" in str(err.value)
    with pytest.raises(SaedetoxError, match="blocks.6.hook_resid_pre"):
        split_registry_name("gpt2-small-res-jb/blocks.6.hook_resid_prex")
    with pytest.raises(SaedetoxError, match="neither a local"):
        load_sae("not-a-release")


def test_registry_download_offline_fails_with_one_line():
    with pytest.raises(SaedetoxError, match="save_model") as err:
        load_sae("gpt2-small-res-jb/blocks.6.hook_resid_pre")
    assert "\n" not in str(err.value)


def test_bad_local_folders(tmp_path, gpt2):
    with pytest.raises(SaedetoxError, match="does not exist"):
        load_sae(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SaedetoxError, match="cfg.json"):
        load_sae(str(tmp_path / "empty"))
    d = write_sae(tmp_path / "t", gpt2.d_model)
    w = d / "sae_weights.safetensors"
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    with pytest.raises(SaedetoxError, match="truncated"):
        load_sae(str(d))
    d2 = write_sae(tmp_path / "j", gpt2.d_model)
    (d2 / "cfg.json").write_text("{not json")
    with pytest.raises(SaedetoxError, match="not valid JSON"):
        load_sae(str(d2))


def test_conventions_come_from_the_model_never_guessed(tmp_path, gpt2):
    """Centring metadata (TransformerLens) applies only to LayerNorm models; without a model nothing is centred."""
    d = write_sae(tmp_path / "c", gpt2.d_model, center=True)
    x = torch.randn(4, gpt2.d_model) + 3.0
    with_gpt2 = load_sae(str(d), gpt2)  # LayerNorm: centred, device from the model
    assert with_gpt2.center and not with_gpt2.notes
    assert torch.allclose(with_gpt2.encode(x), with_gpt2.sae.encode(x - x.mean(-1, keepdim=True)))
    assert not load_sae(str(d), tiny_llama()).center  # RMSNorm: raw, whatever the metadata says
    unknown = load_sae(str(d))  # a Gemma Scope-like SAE loaded without its model used to be centred
    assert not unknown.center and any("load_sae(name, lm)" in n for n in unknown.notes)
    assert torch.allclose(unknown.encode(x), unknown.sae.encode(x))
    assert load_sae(str(d), model_uses_layernorm=True).center  # an explicit override still works
    assert not load_sae(str(d), gpt2, model_uses_layernorm=False).center
    with pytest.raises(SaedetoxError, match="device="):
        load_sae(str(d), "cpu")


@pytest.mark.parametrize("arch", ["standard", "jumprelu"])
@pytest.mark.parametrize("center", [True, False])
@pytest.mark.parametrize("apply_b_dec", [True, False])
def test_latent_reader_folds_centring_and_bias_exactly(tmp_path, arch, center, apply_b_dec):
    import json

    d = write_sae(tmp_path / "s", 32, d_sae=64, arch=arch, center=center)
    cfg = json.loads((d / "cfg.json").read_text())
    cfg["apply_b_dec_to_input"] = apply_b_dec
    (d / "cfg.json").write_text(json.dumps(cfg))
    sae = load_sae(str(d), model_uses_layernorm=center)
    with torch.no_grad():
        sae.sae.b_dec.normal_()
        sae.sae.b_enc.normal_(0, 0.5)
    assert sae.center == center
    lat = torch.tensor([0, 5, 9, 33])
    x = torch.randn(3, 7, 32) * 2 + 0.5
    want = sae.encode(x)[..., lat]  # SAE-Lens' own full encode
    got = sae.latent_reader(lat)(x)
    assert torch.allclose(got, want, atol=1e-5)
    assert (want > 0).any()
