"""Push-calibrated levels: pilot prompts, and gated modes landing on their target effective push."""

from __future__ import annotations

import pytest

from saedetox.data.calibration import CALIBRATION_TEXTS
from saedetox.errors import SaedetoxError
from saedetox.eval.runs.push_calibration import calibrate_push, measure_push, pilot_prompts, pilot_source
from saedetox.eval.sampler.sampling import SamplingConfig
from saedetox.steering.spec import Intervention, SteeringSpec
from saedetox.steering.steerer import Steerer

LATENTS = [1, 5, 7, 12]
PILOT = [" ".join(t.split()[:5]) for t in CALIBRATION_TEXTS[:12]]
SAMPLING = SamplingConfig(n_samples=1, max_new_tokens=6, batch_size=12, seed=0)


def test_pilot_prompts_avoid_the_evaluated_ones():
    pool = [f"p{i}" for i in range(10)]
    got, disjoint = pilot_prompts(pool, pool[:4], n=5, seed=1)
    assert disjoint and len(got) == 5 and not set(got) & set(pool[:4])
    assert got == pilot_prompts(pool, pool[:4], n=5, seed=1)[0]  # seeded
    got, disjoint = pilot_prompts(pool, pool[:8], n=5, seed=1)  # only 2 spare: the rest from evaluated ones
    assert not disjoint and len(got) == 5 and set(pool[8:]) <= set(got)


@pytest.mark.parametrize("mode,tau", [("conditional", 0.12), ("token", 0.05)])  # τ: gates open on some prompts
def test_gated_push_levels_land_within_tolerance(gpt2, sae_dir, mode, tau):
    iv = Intervention(sae=str(sae_dir), latents=LATENTS, mode=mode, push=0.3, threshold=tau)
    st = Steerer(gpt2, SteeringSpec([iv]))
    start = st.resolved[0].alpha
    before = measure_push(gpt2, st, PILOT, SAMPLING)[0]
    assert before < 0.3 * 0.9  # at the constant-mode α a gated mode pushes less than asked
    record = calibrate_push(gpt2, st, PILOT, SAMPLING)
    assert record["within_tolerance"] and record["steps"] >= 1 and st.resolved[0].alpha > start
    again = measure_push(gpt2, st, PILOT, SAMPLING)[0]  # an independent re-measurement of the same pilot
    assert again == pytest.approx(0.3, rel=0.1)
    assert st.stats()["effective_push"] is None  # the pilot leaves no statistics behind


def test_constant_push_needs_no_pilot(gpt2, sae_dir):
    st = Steerer(gpt2, SteeringSpec([Intervention(sae=str(sae_dir), latents=LATENTS, push=0.3)]))
    assert calibrate_push(gpt2, st, PILOT, SAMPLING) is None
    assert measure_push(gpt2, st, PILOT, SAMPLING)[0] == pytest.approx(0.3, rel=1e-5)


def test_a_gate_that_never_opens_cannot_be_calibrated(gpt2, sae_dir):
    iv = Intervention(sae=str(sae_dir), latents=LATENTS, mode="token", push=0.3, threshold=1e6)
    with pytest.raises(SaedetoxError, match="never pushed"):
        calibrate_push(gpt2, Steerer(gpt2, SteeringSpec([iv])), PILOT, SAMPLING)


def test_a_test_split_calibrates_on_its_dev_split():
    from saedetox.data.roles import reference_prompts

    assert pilot_source("challenging:test") == "challenging:dev"
    assert pilot_source("nontoxic:test") == "nontoxic:dev"
    for other in ("challenging", "challenging:dev", "prompts.jsonl", "my:test.txt"):
        assert pilot_source(other) == other
    dev = {p.text for p in reference_prompts("challenging:dev")}
    test = {p.text for p in reference_prompts("challenging:test")}
    assert dev and test and not dev & test  # the pilot never sees a prompt the run evaluates


def test_a_pinned_calibration_gives_another_protocol_the_clean_runs_levels(gpt2, sae_dir, tmp_path):
    import json
    from dataclasses import replace

    from saedetox.eval.config import EvalConfig
    from saedetox.eval.runs.push_calibration import calibrate_method, calibration_key, pin_calibration
    from saedetox.methods.base import Method

    iv = Intervention(sae=str(sae_dir), latents=LATENTS, mode="conditional", push=0.3, threshold=0.12)
    method = Method(name="sae", steerer=Steerer(gpt2, SteeringSpec([iv])))
    clean = tmp_path / "clean.json"
    record = {"alpha": [2.5], "target": [0.3]}  # a finished calibration, as the clean run cached it
    clean.write_text(
        json.dumps({"key": calibration_key(method.steerer, EvalConfig(prompts="challenging:test")), "record": record})
    )
    other = replace(EvalConfig(prompts="mixed:test"), n_prompts=5)
    cache = tmp_path / "other" / "push_calibration.json"
    assert pin_calibration(method, other, clean, cache)
    assert json.loads(cache.read_text())["key"] == calibration_key(method.steerer, other)
    method.steerer.resolved[0].set_alpha(1.0)
    # the run on the other prompt set loads the pinned levels: no pilot (no prompts needed), α as the clean run's
    assert calibrate_method(gpt2, method, other, [], None, cache) == record
    assert method.steerer.resolved[0].alpha == pytest.approx(2.5)
    iv2 = Intervention(sae=str(sae_dir), latents=LATENTS, mode="conditional", push=0.2, threshold=0.12)
    with pytest.raises(SaedetoxError, match="another steering"):
        pin_calibration(Method(name="sae", steerer=Steerer(gpt2, SteeringSpec([iv2]))), other, clean, cache)
    constant = Method(
        name="sae", steerer=Steerer(gpt2, SteeringSpec([Intervention(sae=str(sae_dir), latents=LATENTS, push=0.3)]))
    )
    assert not pin_calibration(constant, other, clean, tmp_path / "none.json")


def test_a_method_put_back_before_calibration_has_a_fresh_processs_fingerprint(gpt2, sae_dir, tmp_path):
    """A clean run calibrates a method in this process, then the same level runs under an attack: the
    second run's fingerprint must not see the first run's calibration (a resume in a fresh process
    would not), yet its steering is the pinned calibrated one."""
    import json

    from saedetox.eval.config import EvalConfig
    from saedetox.eval.runs.identity import method_settings
    from saedetox.eval.runs.push_calibration import Uncalibrated, calibrate_method, calibration_key
    from saedetox.methods.base import Method

    def build() -> Method:
        iv = Intervention(sae=str(sae_dir), latents=LATENTS, mode="conditional", push=0.3, threshold=0.12)
        return Method(name="sae", steerer=Steerer(gpt2, SteeringSpec([iv])))

    fresh, method = build(), build()
    pristine = Uncalibrated.of(method)
    cfg = EvalConfig(prompts="challenging:test")
    cache = tmp_path / "push_calibration.json"
    cache.write_text(json.dumps({"key": calibration_key(method.steerer, cfg), "record": {"alpha": [2.5]}}))
    calibrate_method(gpt2, method, cfg, [], None, cache)
    assert method.steerer.resolved[0].alpha == pytest.approx(2.5) and "push_calibration" in method.details
    assert method_settings(method) != method_settings(fresh)  # what a second run would have fingerprinted
    pristine.restore(method)
    assert method_settings(method) == method_settings(fresh)
    assert calibrate_method(gpt2, method, cfg, [], None, cache) == {"alpha": [2.5]}  # and it steers as pinned
    assert method.steerer.resolved[0].alpha == pytest.approx(2.5)
