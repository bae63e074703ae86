"""The feature-splitting study's measures: OMP coverage and the stated trend."""

from __future__ import annotations

import torch

from saedetox.experiments.splitting import conclusion, latents_for_coverage


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
