"""The one evaluation config: YAML keys in, the sampling config out."""

from __future__ import annotations

from dataclasses import asdict

import pytest

from saedetox.errors import SaedetoxError
from saedetox.eval.config import EvalConfig
from saedetox.eval.sampler.sampling import SamplingConfig
from saedetox.experiments.config import parse_config


def test_sampling_follows_the_evaluation_keys():
    cfg = EvalConfig(samples=3, max_new_tokens=7, top_p=0.8, temperature=0.7, batch_size=12, seed=4)
    want = SamplingConfig(n_samples=3, max_new_tokens=7, top_p=0.8, temperature=0.7, seed=4, batch_size=12)
    assert asdict(cfg.sampling) == asdict(want)
    assert EvalConfig(judges=["probe"], capability=["blimp"]).judges == ("probe",)
    with pytest.raises(SaedetoxError, match="top_p"):
        EvalConfig(top_p=1.5).validate()


def test_a_sweep_evaluation_section_is_an_eval_config():
    raw = {
        "features": [1],
        "runs": [{"method": "none"}],
        "evaluation": {"samples": 2, "n_boot": 10, "judges": ["probe"]},
    }
    ev = parse_config(raw).evaluation
    assert isinstance(ev, EvalConfig) and ev.samples == 2 and ev.n_boot == 10 and ev.judges == ("probe",)
