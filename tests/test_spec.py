"""The steering spec: validation and round trips."""

from __future__ import annotations

import json

import pytest

from saedetox.errors import SaedetoxError
from saedetox.spec import Intervention, SteeringSpec, parse_features


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


def test_parse_features(tmp_path):
    assert parse_features("3, 17,42") == [3, 17, 42]
    f = tmp_path / "features.json"
    f.write_text(json.dumps({"selected": [5, 6]}))
    assert parse_features(str(f)) == [5, 6]
    with pytest.raises(SaedetoxError):
        parse_features("a,b")
    with pytest.raises(SaedetoxError, match="not found"):
        parse_features(str(tmp_path / "missing.json"))
