"""The Gumbel nucleus sampler draws exactly from transformers' nucleus, and couples paired runs through shared noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import chisquare
from transformers.generation.logits_process import TemperatureLogitsWarper, TopPLogitsWarper

from saedetox.eval.sampler.noise import NoiseStream, reuse_noise, step_seed
from saedetox.eval.sampler.nucleus import gumbel_nucleus_sample, nucleus_sample_exponential

STRATEGIES = ["reject", "sort"]


def hf_nucleus(logits: torch.Tensor, top_p: float, temperature: float) -> torch.Tensor:
    """transformers' own distribution: temperature, then top-p on a full sort, renormalised."""
    warped = TopPLogitsWarper(top_p)(None, TemperatureLogitsWarper(temperature)(None, logits))
    return warped.softmax(-1)


def fit(counts: torch.Tensor, probs: torch.Tensor) -> float:
    """Chi-square goodness-of-fit p-value of ``counts`` against ``probs`` (renormalised to the same total)."""
    expected = probs / probs.sum() * counts.sum()
    return float(chisquare(counts.numpy(), expected.numpy()).pvalue)


def draws(logits_row: torch.Tensor, n: int, top_p: float, temperature: float, strategy: str, batch: int = 0):
    u = NoiseStream(7, batch).uniform(0, (n, logits_row.shape[-1]))
    return gumbel_nucleus_sample(logits_row.expand(n, -1), u, top_p, temperature, strategy)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize(("top_p", "temperature"), [(0.9, 1.0), (0.9, 0.7), (0.5, 1.3)])
def test_token_frequencies_match_transformers_nucleus(strategy, top_p, temperature):
    g = torch.Generator().manual_seed(int(top_p * 10 + temperature * 100))
    logits = torch.randn(1, 50, generator=g) * 2.0
    want = hf_nucleus(logits, top_p, temperature)[0].double()
    inside = want > 0
    assert 3 <= int(inside.sum()) < 50  # a real nucleus: several tokens kept, some dropped
    n = 20_000
    got = torch.bincount(draws(logits, n, top_p, temperature, strategy), minlength=50).double()
    assert float(got[~inside].sum()) == 0.0  # nothing outside the nucleus, ever
    p = fit(got[inside], want[inside])
    assert p > 1e-3, p
    # the same test rejects a sampler that ignores the nucleus or the temperature (it has power)
    full = torch.bincount(draws(logits, n, 1.0, temperature, strategy), minlength=50).double()
    assert float(full[~inside].sum()) > 0
    hot = torch.bincount(draws(logits, n, top_p, temperature * 1.3, strategy), minlength=50).double()
    assert fit(hot[inside], want[inside]) < 1e-6


@pytest.mark.parametrize("spread", [0.5, 3.0, 8.0])
def test_strategies_agree_and_equal_gumbel_max_over_the_explicit_nucleus(spread):
    g = torch.Generator().manual_seed(int(spread * 10))
    logits = torch.randn(256, 2048, generator=g) * spread
    u = NoiseStream(3, 1).uniform(0, tuple(logits.shape))
    gumbel = -torch.log(-torch.log(u))
    want = (hf_nucleus(logits, 0.9, 0.8).log() + gumbel).argmax(-1)  # textbook Gumbel-max on the nucleus
    for strategy in STRATEGIES:
        got = gumbel_nucleus_sample(logits, u, 0.9, 0.8, strategy)
        assert torch.equal(got, want), strategy


def test_top_p_one_samples_the_full_distribution_and_tiny_p_is_greedy():
    logits = torch.randn(64, 300)
    u = NoiseStream(0, 0).uniform(0, (64, 300))
    full = gumbel_nucleus_sample(logits, u, 1.0)
    assert torch.equal(full, (logits.log_softmax(-1) - torch.log(-torch.log(u))).argmax(-1))
    for strategy in STRATEGIES:
        assert torch.equal(gumbel_nucleus_sample(logits, u, 1e-6, strategy=strategy), logits.argmax(-1))


def test_coupling_same_noise_same_token_independent_noise_not():
    g = torch.Generator().manual_seed(5)
    a = torch.randn(1, 1000, generator=g) * 3.0
    b = a + 0.05 * torch.randn(1, 1000, generator=g)  # a nearly identical distribution (a mild steering edit)
    n = 2000
    same = (draws(a, n, 0.9, 1.0, "reject", batch=0) == draws(b, n, 0.9, 1.0, "reject", batch=0)).double().mean()
    indep = (draws(a, n, 0.9, 1.0, "reject", batch=0) == draws(b, n, 0.9, 1.0, "reject", batch=1)).double().mean()
    collision = float((hf_nucleus(a, 0.9, 1.0) * hf_nucleus(b, 0.9, 1.0)).sum())  # P(equal) for independent draws
    assert float(same) > 0.9
    assert abs(float(indep) - collision) < 0.03
    assert float(same) > float(indep) + 0.5


def test_noise_is_a_pure_function_of_seed_batch_step_and_shape():
    a, b = NoiseStream(11, 4), NoiseStream(11, 4)
    late = a.uniform(3, (8, 16)).clone()  # asking for step 3 first changes nothing
    first = a.uniform(0, (8, 16)).clone()
    assert torch.equal(b.uniform(0, (8, 16)), first)
    assert torch.equal(b.uniform(3, (8, 16)), late)
    others = [NoiseStream(11, 5).uniform(0, (8, 16)), NoiseStream(12, 4).uniform(0, (8, 16)), late]
    assert all(not torch.equal(first, o) for o in others)
    assert 0.0 <= float(first.min()) and float(first.max()) < 1.0
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = NoiseStream(1, 2).uniform(5, (64, 4096)).clone()
        torch.set_num_threads(max(2, threads))
        assert torch.equal(NoiseStream(1, 2).uniform(5, (64, 4096)), one)
    finally:
        torch.set_num_threads(threads)
    assert len({step_seed(0, 0, s) for s in range(1000)} | {step_seed(0, 1, s) for s in range(1000)}) == 2000


def test_noise_inside_and_outside_inference_mode():
    s = NoiseStream(0, 0)
    with torch.inference_mode():
        x = s.uniform(0, (4, 8)).clone()
    assert torch.equal(s.uniform(0, (4, 8)), x)
    assert np.isfinite(x.numpy()).all()


def test_reused_noise_is_the_fresh_draw_and_is_drawn_once():
    fresh = NoiseStream(4, 2).exponential(3, (16, 64)).clone()
    assert torch.equal(fresh, NoiseStream(4, 2).uniform(3, (16, 64)).log().neg())
    with reuse_noise() as kept:
        first = NoiseStream(4, 2).exponential(3, (16, 64))
        with torch.inference_mode():  # a second run, inside the decode loop's inference mode
            again = NoiseStream(4, 2).exponential(3, (16, 64))
        other = NoiseStream(4, 3).exponential(3, (16, 64))  # another batch: other numbers
    assert again is first and torch.equal(first, fresh) and not first.is_inference()
    assert not torch.equal(other, fresh)
    assert (kept.hits, kept.misses, len(kept.store)) == (1, 2, 0)  # the scope's store is emptied on exit
    assert NoiseStream(4, 2).exponential(3, (16, 64)) is not first  # outside the scope: fresh every time


def test_reuse_keeps_only_what_fits_its_budget():
    one = 16 * 64 * 4
    with reuse_noise(budget_bytes=2 * one) as kept:
        s = NoiseStream(0, 0)
        for step in range(3):
            s.exponential(step, (16, 64))
        assert kept.used == 2 * one and len(kept.store) == 2  # the third did not fit: drawn, not kept
        assert torch.equal(s.exponential(2, (16, 64)), NoiseStream(0, 0).uniform(2, (16, 64)).log().neg())
        assert kept.hits == 0 and kept.misses == 4


def test_sampling_with_reused_noise_gives_the_same_tokens():
    g = torch.Generator().manual_seed(9)
    logits = torch.randn(32, 500, generator=g) * 3.0
    want = [gumbel_nucleus_sample(logits, NoiseStream(5, 0).uniform(t, (32, 500)), 0.9) for t in range(3)]
    with reuse_noise():
        for _ in range(2):  # the second pass reads the kept noise
            noise = NoiseStream(5, 0)
            got = [nucleus_sample_exponential(logits, noise.exponential(t, (32, 500)), 0.9) for t in range(3)]
            assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))
