"""The feature-splitting study's measures: OMP coverage and the stated trend."""

from __future__ import annotations

import torch

from helpers import tiny_llama, write_sae
from saedetox.experiments.splitting import conclusion, coverage_count, latents_for_coverage
from saedetox.sae.load import load_sae


def test_latents_for_coverage_omp():
    eye = torch.eye(4)
    target = torch.tensor([3.0, 4.0, 0.0, 0.0])  # 36% on e0, 64% on e1
    assert latents_for_coverage(eye, target, 0.6) == 1
    assert latents_for_coverage(eye, target, 0.99) == 2
    assert latents_for_coverage(eye[2:], target, 0.5, cap=7) == 7  # never covered


def test_conclusion_states_the_trend():
    rows = [
        {"width": w, "tox_prob": t, "tox_prob_none": 0.8, "latents_for_coverage": c, "coverage_target": 0.8}
        for w, t, c in ((1024, 0.4, 5), (2048, 0.5, 9), (4096, 0.6, 17))
    ]
    text = conclusion(rows)
    assert "weakens" in text and "more latents" in text


def test_coverage_target_is_centred_for_centred_saes(tmp_path, gpt2):
    """A centred SAE's decoder lives in centred space: the raw mean-difference direction's mean component
    cannot be covered there, so an uncentred target needs more latents (here: never enough)."""
    d = gpt2.d_model
    path = write_sae(tmp_path / "c", d, d_sae=d - 1, center=True)
    centred = load_sae(str(path), gpt2)
    raw = load_sae(str(path), tiny_llama())  # the same SAE read raw (RMSNorm model: no centring)
    assert centred.center and not raw.center
    # decoder rows: an orthonormal basis of the mean-free subspace (what a centred SAE reconstructs)
    basis = torch.linalg.qr(torch.eye(d) - 1.0 / d)[0][:, : d - 1].T
    with torch.no_grad():
        centred.sae.W_dec.copy_(basis)
        raw.sae.W_dec.copy_(basis)
    direction = basis[0] + 0.9 * torch.ones(d) / d**0.5  # toxic direction in raw space: part of it is the mean
    assert coverage_count(centred, direction, 0.8) == 1
    assert coverage_count(raw, direction, 0.8) == 1024  # the mean component (45%) is outside every row's span
    assert latents_for_coverage(basis, direction, 0.8, cap=1024) == 1024  # the old, uncentred computation
