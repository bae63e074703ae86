"""features.json: latents and gates read back the way steering reads them."""

from __future__ import annotations

import json

import pytest

from saedetox.discover.features import feature_thresholds, parse_features
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
