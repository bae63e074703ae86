"""The steering spec: validation and round trips."""

from __future__ import annotations

import pytest

from saedetox.errors import SaedetoxError
from saedetox.steering.spec import Intervention, SteeringSpec


def test_round_trip_json_and_yaml(tmp_path):
    spec = SteeringSpec([Intervention(sae="x/y", latents=[1, 2], mode="token", tier="high", threshold=0.5)]).validate()
    for name in ("s.json", "s.yaml"):
        spec.save(tmp_path / name)
        assert SteeringSpec.load(tmp_path / name).to_dict() == spec.to_dict()


def test_default_tier_is_medium():
    iv = Intervention(sae="s", latents=[1]).validate()
    assert iv.tier == "medium" and iv.strength is None


@pytest.mark.parametrize(
    "kw,msg",
    [
        ({"mode": "sideways"}, "mode"),
        ({"tier": "huge"}, "tier"),
        ({"tier": "low", "strength": 1.0}, "either"),
        ({"strength": float("nan")}, "finite"),
        ({"threshold": float("inf")}, "finite"),
        ({"latents": []}, "latents"),
        ({"positions": "some"}, "position"),
    ],
)
def test_validation_errors(kw, msg):
    base = {"sae": "s", "latents": [1]}
    base.update(kw)
    with pytest.raises(SaedetoxError, match=msg):
        Intervention(**base).validate()


def test_vector_interventions():
    Intervention(vector=[0.0, 1.0], hook="blocks.0.hook_resid_pre", strength=1.0).validate()
    with pytest.raises(SaedetoxError, match="constant"):
        Intervention(vector=[0.0, 1.0], hook="blocks.0.hook_resid_pre", mode="token").validate()
    with pytest.raises(SaedetoxError, match="NaN"):
        Intervention(vector=[float("nan")], hook="blocks.0.hook_resid_pre").validate()


def test_from_dict_rejects_unknown_fields():
    with pytest.raises(SaedetoxError, match="colour"):
        SteeringSpec.from_dict({"interventions": [{"sae": "s", "latents": [1], "colour": "red"}]})
    with pytest.raises(SaedetoxError):
        SteeringSpec.from_dict({"nope": 1})


def test_numeric_tiers_are_fractions_of_the_median_norm():
    from saedetox.steering.spec import TIER_FACTORS, parse_tier, tier_factor, tier_label

    assert parse_tier("medium") == "medium" and tier_factor("medium") == TIER_FACTORS["medium"]
    assert parse_tier("0.375") == 0.375 and tier_factor(0.375) == 0.375 and tier_label(0.375) == "n0.375"
    iv = Intervention(sae="x", latents=[1], tier="0.3").validate()
    assert iv.tier == 0.3
    for bad in ("extreme", "nan", "-1", 0, 9, True):
        with pytest.raises(SaedetoxError):
            parse_tier(bad)


def test_numeric_tier_scales_the_shift_exactly(gpt2, sae_dir):
    import torch

    from saedetox.steering.steerer import Steerer

    def shift(tier):
        r = Steerer(gpt2, SteeringSpec([Intervention(sae=str(sae_dir), latents=[1, 5], tier=tier)])).resolved[0]
        return r.vector, r.median_norm

    v_med, median = shift("medium")
    v_num, _ = shift(0.375)
    assert torch.allclose(v_num, v_med * 1.5, atol=1e-6)
    assert abs(float(v_num.norm()) / median - 0.375) < 1e-5


def test_push_levels_validate():
    assert Intervention(sae="s", latents=[1], mode="token", push=0.1).validate().tier is None
    for kw, msg in (
        ({"push": 0.1, "tier": "low"}, "one of"),
        ({"push": 0.1, "strength": 1.0}, "one of"),
        ({"push": 0.0}, r"\(0, 8\]"),
        ({"push": True}, r"\(0, 8\]"),
        ({"push": 0.1, "mode": "clamp"}, "no push"),
    ):
        with pytest.raises(SaedetoxError, match=msg):
            Intervention(sae="s", latents=[1], **kw).validate()


def test_push_level_is_closed_form_for_constant_mode(gpt2, sae_dir):
    from saedetox.steering.steerer import Steerer

    for mode, needs in (("constant", False), ("token", True), ("conditional", True)):
        r = Steerer(gpt2, SteeringSpec([Intervention(sae=str(sae_dir), latents=[1, 5], mode=mode, push=0.3)])).resolved[
            0
        ]
        assert abs(float(r.vector.norm()) / r.median_norm - 0.3) < 1e-5  # the start: as if constant
        assert r.needs_calibration is needs and r.target_push == 0.3


def test_one_gate_rule(tmp_path):
    import json

    from saedetox.steering.spec import default_detector, default_gates, parse_threshold

    feats = {"selected": [3, 4], "thresholds": [0.5, 0.7], "detector": {"kind": "latents"}}
    path = tmp_path / "features.json"
    path.write_text(json.dumps(feats))
    for source in (feats, str(path), path, [0.5, 0.7]):
        assert default_gates("conditional", source) == (0.0, [0.5, 0.7])
        assert default_gates("token", source) == (0.0, None)  # token: wherever a selected latent is active
        assert default_gates("adaptive", source) == (0.0, None)
    assert default_gates("conditional", None) == (0.0, None)
    assert parse_threshold("auto", str(path), "conditional") == default_gates("conditional", str(path))
    assert parse_threshold("auto", str(path), "token") == default_gates("token", str(path))
    assert parse_threshold("0.25", str(path), "conditional") == (0.25, None)
    assert default_detector(str(path)) == {"kind": "latents"} and default_detector(feats) == {"kind": "latents"}
    assert default_detector(tmp_path / "missing.json") is None


def test_default_detector_from_discovery_is_usable_and_follows_the_selected_order():
    """Discovery stores the fitted latents in the detector; the spec takes coef/scale in `selected` order."""
    from saedetox.steering.spec import Intervention, default_detector

    det = {"kind": "latents", "latents": [4, 3], "coef": [2.0, 1.0], "intercept": -1.0, "scale": [0.5, 0.25]}
    got = default_detector({"selected": [3, 4], "detector": det})
    assert got == {"kind": "latents", "coef": [1.0, 2.0], "intercept": -1.0, "scale": [0.25, 0.5]}
    iv = Intervention(sae="x", latents=[3, 4], mode="adaptive", tier="low", detector=got).validate()
    assert iv.detector["coef"] == [1.0, 2.0]
    same = default_detector({"selected": [4, 3], "detector": det})
    assert same is not None and same["coef"] == [2.0, 1.0] and "latents" not in same
    with pytest.raises(SaedetoxError, match="other latents"):
        default_detector({"selected": [3, 5], "detector": det})


def test_validate_returns_a_checked_copy_and_leaves_its_input_alone():
    # validate() used to fill in the default tier and parse numeric tiers in place
    iv = Intervention(sae="s", latents=[1], tier="0.3")
    checked = iv.validate()
    assert checked.tier == 0.3 and iv.tier == "0.3"
    bare = Intervention(sae="s", latents=[1])
    spec = SteeringSpec([bare])
    out = spec.validate()
    assert out.interventions[0].tier == "medium" and bare.tier is None and spec.interventions[0] is bare
    assert out.interventions[0].latents is not bare.latents
