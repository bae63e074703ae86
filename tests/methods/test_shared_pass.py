"""AurA + Surgery's probe from one shared pass per side: the same numbers as each method's own passes."""

from __future__ import annotations

import torch

from helpers import CLEAN_TEXTS, TOXIC_TEXTS, tiny_gpt2, tiny_llama
from saedetox.methods import contrast
from saedetox.methods.aura import aura_factors
from saedetox.methods.contrast import ContrastData
from saedetox.methods.shared_pass import prefetch_pooled
from saedetox.methods.surgery_probe import train_toxicity_probe


def _count_passes(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = contrast.length_sorted_batches
    monkeypatch.setattr(contrast, "length_sorted_batches", lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


def test_one_pass_per_side_gives_the_same_factors_and_probe(monkeypatch):
    for factory in (tiny_gpt2, tiny_llama):
        lm = factory()
        calls = _count_passes(monkeypatch)
        alone = ContrastData(TOXIC_TEXTS, CLEAN_TEXTS)
        want_f, want_p = aura_factors(lm, alone), train_toxicity_probe(lm, alone)
        assert len(calls) == 4  # AurA: toxic + clean; probe: toxic + clean
        calls.clear()
        shared = ContrastData(TOXIC_TEXTS, CLEAN_TEXTS)
        assert prefetch_pooled(lm, shared, {"none", "aura", "surgery"})
        got_f, got_p = aura_factors(lm, shared), train_toxicity_probe(lm, shared)
        assert len(calls) == 2  # one pass per side for both
        assert list(got_f) == list(want_f) and all(torch.equal(got_f[n], want_f[n]) for n in want_f)
        assert torch.equal(got_p.vector, want_p.vector) and got_p.train_acc == want_p.train_acc
        assert not prefetch_pooled(lm, shared, {"aura", "surgery"})  # already there: no pass


def test_no_shared_pass_unless_both_methods_run(gpt2, monkeypatch):
    calls = _count_passes(monkeypatch)
    data = ContrastData(TOXIC_TEXTS, CLEAN_TEXTS)
    assert not prefetch_pooled(gpt2, data, {"aura", "meandiff"}) and not prefetch_pooled(gpt2, data, {"surgery"})
    monkeypatch.setattr("saedetox.methods.aura.RESPONSE_BUDGET", 10)  # AurA would need several passes
    assert not prefetch_pooled(gpt2, data, {"aura", "surgery"})
    assert calls == [] and data.cache == {}
