"""The SAE preflight: fit, explained variance, CE-loss change, hard checks."""

from __future__ import annotations

import pytest
import torch

from helpers import tiny_llama, write_sae
from saedetox.errors import SaedetoxError
from saedetox.sae.load import load_sae
from saedetox.sae.preflight import LOW_EV, ev_warnings, preflight


def test_preflight_reports_fit(sae_dir, gpt2):
    sae = load_sae(str(sae_dir), model_uses_layernorm=True)
    rep = preflight(gpt2, sae)
    assert rep.n_tokens > 100 and rep.d_in == gpt2.d_model
    assert rep.explained_variance < 1.0 and rep.mean_l0 > 0
    assert rep.ce_spliced != rep.ce_clean
    assert any("trained on 'tiny'" in w for w in rep.warnings)
    # a random SAE does not fit: its explained variance is below the bar, and the user is told
    assert rep.explained_variance < LOW_EV
    assert any("Explained variance" in w and f"{rep.explained_variance:.3f}" in w for w in rep.warnings)


def test_ev_warnings():
    assert "negative" in ev_warnings(-0.4)[0] and "-0.400" in ev_warnings(-0.4)[0]
    assert "only 0.120" in ev_warnings(0.12)[0]
    assert "undefined" in ev_warnings(float("nan"))[0]
    assert ev_warnings(0.85) == [] and ev_warnings(LOW_EV) == []


def test_preflight_perfect_sae_has_full_ev(tmp_path, gpt2):
    """An identity-like SAE (W_dec = I, ReLU on ±x) reconstructs exactly: EV 1, CE unchanged."""
    import sae_lens

    d = gpt2.d_model
    cfg = sae_lens.StandardSAEConfig(d_in=d, d_sae=2 * d)
    cfg.metadata.hook_name = "blocks.1.hook_resid_pre"
    cfg.metadata.model_class_name = "AutoModelForCausalLM"
    sae = sae_lens.StandardSAE(cfg)
    eye = torch.eye(d)
    with torch.no_grad():
        sae.W_enc.copy_(torch.cat([eye, -eye], 1))
        sae.W_dec.copy_(torch.cat([eye, -eye], 0))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    sae.save_model(tmp_path / "id")
    rep = preflight(gpt2, load_sae(str(tmp_path / "id"), model_uses_layernorm=True))
    assert rep.explained_variance == pytest.approx(1.0, abs=1e-5)
    assert rep.ce_spliced == pytest.approx(rep.ce_clean, abs=1e-4)
    assert not any("Explained variance" in w for w in rep.warnings)


def test_preflight_width_and_hook_checks(tmp_path):
    lm = tiny_llama()
    with pytest.raises(SaedetoxError, match="d_in"):
        preflight(lm, load_sae(str(write_sae(tmp_path / "a", lm.d_model + 1))))
    with pytest.raises(SaedetoxError, match="layers"):
        preflight(lm, load_sae(str(write_sae(tmp_path / "b", lm.d_model, hook="blocks.5.hook_resid_post"))))
