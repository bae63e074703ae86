"""Input scalings SAE-Lens keeps outside the SAE: our encode equals SAE-Lens' own pipeline on such SAEs."""

from __future__ import annotations

import json

import pytest
import torch
from sae_lens import SAE
from sae_lens.training.activation_scaler import ActivationScaler, ActivationWhitening

from helpers import write_sae
from saedetox.data.calibration import CALIBRATION_TEXTS
from saedetox.errors import SaedetoxError
from saedetox.model.capture import capture
from saedetox.sae.load import load_sae
from saedetox.sae.preflight import preflight

TEXT = ["She walked to the station and waited for the last train."]


def _hidden(lm, texts, layer):
    """Activations at blocks.{layer}.hook_resid_pre from plain HF forwards, one text at a time, BOS left out."""
    tok = lm.tokenizer
    with torch.no_grad():
        for t in texts:
            ids = tok(t)["input_ids"]
            ids = ids if ids[0] == tok.bos_token_id else [tok.bos_token_id, *ids]
            yield lm.model(torch.tensor([ids]), output_hidden_states=True).hidden_states[layer][0, 1:]


@pytest.mark.parametrize("arch", ["standard", "jumprelu", "topk"])
def test_trainer_checkpoint_scale_is_folded_as_sae_lens_applies_it(tmp_path, gpt2, arch):
    """An SAE-Lens trainer checkpoint: weights unfolded, the factor in activation_scaler.json."""
    d = write_sae(tmp_path / arch, gpt2.d_model, arch=arch, normalize_activations="expected_average_only_in",
                  **({"k": 8} if arch == "topk" else {}))  # fmt: skip
    ActivationScaler(scaling_factor=3.7).save(str(d / "activation_scaler.json"))
    ours = load_sae(str(d), gpt2)
    # SAE-Lens' pipeline: its loader, then its trainer/evaluator scale every batch with the saved scaler
    ref, scaler = SAE.load_from_disk(str(d)), ActivationScaler()
    scaler.load(d / "activation_scaler.json")
    x = capture(gpt2, TEXT, ours.hook_name)[0]
    want = ref.encode(scaler.scale(x))
    assert (want > 0).any() and not torch.allclose(want, ref.encode(x), atol=1e-3)  # the scale matters
    assert torch.allclose(ours.encode(x), want, atol=1e-5)
    lat = torch.tensor([0, 3, 9, 40])
    assert torch.allclose(ours.latent_reader(lat)(x), want[..., lat], atol=1e-5)
    assert torch.allclose(ours.reconstruct(x), scaler.unscale(ref.decode(want)), atol=1e-5)
    assert any("3.7" in n and "activation_scaler.json" in n for n in ours.notes)


def test_unknown_scale_is_estimated_as_sae_lens_trainer_estimates_it(tmp_path, gpt2):
    d = write_sae(tmp_path / "e", gpt2.d_model, normalize_activations="expected_average_only_in")
    ours = load_sae(str(d), gpt2)
    # SAE-Lens' own estimator over the same calibration activations (token-weighted mean norm)
    scaler = ActivationScaler()
    batches = list(_hidden(gpt2, CALIBRATION_TEXTS, 1))
    scaler.estimate_scaling_factor(gpt2.d_model, iter(batches), n_batches_for_norm_estimate=len(batches))
    ref = SAE.load_from_disk(str(d))
    x = capture(gpt2, TEXT, ours.hook_name)[0]
    assert torch.allclose(ours.encode(x), ref.encode(scaler.scale(x)), atol=1e-4)
    note = next(n for n in ours.notes if "estimated" in n)
    assert f"{scaler.scaling_factor:.4g}" in note
    assert note in preflight(gpt2, ours).warnings  # the user sees it


def test_without_a_model_the_sae_is_encoded_as_sae_lens_load_from_disk_does(tmp_path, gpt2):
    d = write_sae(tmp_path / "u", gpt2.d_model, normalize_activations="expected_average_only_in")
    ours = load_sae(str(d))
    x = capture(gpt2, TEXT, ours.hook_name)[0]
    assert torch.allclose(ours.encode(x), SAE.load_from_disk(str(d)).encode(x), atol=1e-6)
    assert any("unscaled" in n for n in ours.notes)


def test_whitening_checkpoint_is_folded_as_sae_lens_applies_it(tmp_path, gpt2):
    d = write_sae(tmp_path / "w", gpt2.d_model, normalize_activations="covariance_whitening")
    g = torch.Generator().manual_seed(1)
    a = torch.randn(gpt2.d_model, gpt2.d_model, generator=g, dtype=torch.float64) / gpt2.d_model**0.5
    m = a + torch.eye(gpt2.d_model, dtype=torch.float64)
    white = ActivationWhitening(mean=torch.randn(gpt2.d_model, generator=g, dtype=torch.float64), matrix=m,
                                inverse_matrix=torch.linalg.inv(m))  # fmt: skip
    ActivationScaler(whitening=white).save(str(d / "activation_scaler.json"))
    ours = load_sae(str(d), gpt2)
    ref, scaler = SAE.load_from_disk(str(d)), ActivationScaler()
    scaler.load(d / "activation_scaler.json")
    x = capture(gpt2, TEXT, ours.hook_name)[0]
    want = ref.encode(scaler.scale(x))
    assert (want > 0).any() and torch.allclose(ours.encode(x), want, atol=1e-4)


def test_bad_scaler_file_is_one_clear_error(tmp_path, gpt2):
    d = write_sae(tmp_path / "b", gpt2.d_model, normalize_activations="expected_average_only_in")
    (d / "activation_scaler.json").write_text(json.dumps({"scaling_factor": -2}))
    with pytest.raises(SaedetoxError, match="invalid scaling_factor"):
        load_sae(str(d), gpt2)
