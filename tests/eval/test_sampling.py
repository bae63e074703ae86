"""Nucleus sampling: our partial-sort warper keeps exactly the tokens transformers' warpers keep."""

from __future__ import annotations

import pytest
import torch
from transformers.generation.logits_process import TemperatureLogitsWarper, TopPLogitsWarper

from saedetox.eval.sampling import NucleusWarper, SamplingConfig, sample


def reference(scores: torch.Tensor, top_p: float, temperature: float) -> torch.Tensor:
    """transformers' own order: temperature, then top-p on a full sort."""
    return TopPLogitsWarper(top_p)(None, TemperatureLogitsWarper(temperature)(None, scores))


@pytest.mark.parametrize("top_p", [0.5, 0.9, 0.95])
@pytest.mark.parametrize("temperature", [0.7, 1.0, 1.5])
@pytest.mark.parametrize("spread", [0.5, 3.0, 8.0])  # near-flat rows fall back to the full sort
def test_nucleus_warper_equals_transformers(top_p, temperature, spread):
    g = torch.Generator().manual_seed(int(top_p * 100 + temperature * 10 + spread))
    scores = torch.randn(64, 4096, generator=g) * spread
    got = NucleusWarper(top_p, temperature, k=256)(None, scores)
    want = reference(scores, top_p, temperature)
    assert torch.equal(torch.isinf(got), torch.isinf(want))
    kept = ~torch.isinf(want)
    assert torch.allclose(got[kept], want[kept])
    assert kept.sum(-1).min() >= 1


def test_nucleus_warper_uses_the_partial_sort_when_it_holds_the_nucleus(monkeypatch):
    scores = torch.randn(8, 4096) * 8.0
    warper = NucleusWarper(0.9, k=256)
    monkeypatch.setattr(warper, "_full", lambda s: pytest.fail("fell back to the full sort"))
    warper(None, scores)


def test_sampling_is_seeded_and_respects_the_nucleus(gpt2):
    cfg = SamplingConfig(n_samples=3, max_new_tokens=5, seed=3, top_p=0.9)
    a = sample(gpt2, ["The library opens at nine", "She walked"], cfg)
    b = sample(gpt2, ["The library opens at nine", "She walked"], cfg)
    assert [[s.token_ids for s in g] for g in a] == [[s.token_ids for s in g] for g in b]
    greedy_like = sample(gpt2, ["She walked"], SamplingConfig(n_samples=4, max_new_tokens=4, seed=0, top_p=1e-6))
    assert len({tuple(s.token_ids) for s in greedy_like[0]}) == 1  # p → 0 keeps only the top token
