"""Non-finite next-token scores are refused in one line, wherever sampling would break on them."""

from __future__ import annotations

import pytest
import torch

from saedetox.errors import SaedetoxError
from saedetox.eval.sampler.sampling import SamplingConfig, sample
from saedetox.model.guard import FiniteFlag, check_scores
from saedetox.steering.spec import Intervention, SteeringSpec
from saedetox.steering.steerer import Steerer


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_and_inf_are_refused(bad):
    scores = torch.zeros(2, 5)
    scores[1, 3] = bad
    with pytest.raises(SaedetoxError, match=r"NaN or infinite during sampling \(generation step 4\)"):
        check_scores(scores, step=3)


def test_minus_inf_is_fine_unless_a_row_has_nothing_left():
    scores = torch.zeros(2, 5)
    scores[0, :4] = -float("inf")  # masked tokens, as a nucleus filter leaves them
    check_scores(scores)
    scores[1, :] = -float("inf")
    with pytest.raises(SaedetoxError):
        check_scores(scores)


def test_the_deferred_flag_checks_once():
    flag = FiniteFlag()
    flag.update(torch.zeros(2, 3))
    flag.update(torch.full((2, 3), float("nan")))
    with pytest.raises(SaedetoxError):
        flag.check()


def test_sampling_says_so_instead_of_torch_multinomial(gpt2, sae_dir):
    spec = SteeringSpec([Intervention(sae=str(sae_dir), latents=[1, 2], strength=1e39)])
    cfg = SamplingConfig(n_samples=2, max_new_tokens=3)
    with pytest.raises(SaedetoxError, match="NaN or infinite"):
        sample(gpt2, ["Hello there"], cfg, Steerer(gpt2, spec))
    with pytest.raises(SaedetoxError, match="NaN or infinite"):
        sample(gpt2, ["Hello there"], SamplingConfig(n_samples=1, max_new_tokens=3, temperature=1e-45))
    with pytest.raises(SaedetoxError, match="NaN or infinite"):
        sample(
            gpt2, ["Hello there"], SamplingConfig(n_samples=1, max_new_tokens=3, do_sample=False), Steerer(gpt2, spec)
        )
