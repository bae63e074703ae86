"""features.json: latents and gates read back the way steering reads them."""

from __future__ import annotations

import json

import pytest

from saedetox.discover.features import feature_detector, feature_thresholds, parse_features
from saedetox.errors import SaedetoxError


def test_parse_features(tmp_path):
    assert parse_features("3, 17,42") == [3, 17, 42]
    f = tmp_path / "features.json"
    f.write_text(json.dumps({"selected": [5, 6]}))
    assert parse_features(str(f)) == [5, 6]
    with pytest.raises(SaedetoxError):
        parse_features("a,b")
    with pytest.raises(SaedetoxError, match="not found"):
        parse_features(str(tmp_path / "missing.json"))


def test_feature_thresholds(tmp_path):
    f = tmp_path / "features.json"
    f.write_text(json.dumps({"selected": [5, 6], "thresholds": [0.5, 1]}))
    assert feature_thresholds(str(f)) == [0.5, 1.0]
    assert feature_thresholds(None) is None and feature_thresholds(str(tmp_path / "missing.json")) is None


def test_feature_detector(tmp_path):
    det = {"kind": "latents", "latents": [5, 6], "coef": [1.0, -0.5], "intercept": 0.1, "scale": [2.0, 1.0]}
    f = tmp_path / "features.json"
    f.write_text(json.dumps({"selected": [5, 6], "detector": det}))
    assert feature_detector(str(f)) == det
    f.write_text(json.dumps({"selected": [5, 6], "detector": None}))
    assert feature_detector(str(f)) is None and feature_detector(None) is None
    f.write_text(json.dumps({"selected": [5, 6], "detector": {**det, "coef": [1.0]}}))
    with pytest.raises(SaedetoxError, match="malformed detector"):
        feature_detector(str(f))
