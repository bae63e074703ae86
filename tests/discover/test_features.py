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


def test_features_object_is_the_json_mapping_with_typed_access(tmp_path):
    from saedetox.discover.features import Features

    obj = {
        "sae": "reference",
        "hook": "blocks.3.hook_resid_pre",
        "method": "auroc",
        "selected": [7, 3],
        "thresholds": [0.5, 1],
        "detector": {"kind": "latents", "coef": [1.0, 2.0]},
        "set_test_auroc": 0.8,
        "features": [
            {
                "index": 7,
                "scores": {"auroc": 0.9},
                "select_auroc": 0.85,
                "test_auroc": 0.8,
                "top_tokens": [{"token": " idiot", "context": "you [[ idiot]]", "act": 3.0}],
                "neuronpedia": None,
            },
            {"index": 3, "scores": {"auroc": 0.7}, "select_auroc": 0.7, "test_auroc": 0.65, "top_tokens": []},
        ],
    }
    feats = Features(obj)
    assert feats == obj and json.loads(json.dumps(feats)) == obj  # dict-compatible: features.json as it was
    assert feats.latents == [7, 3] and feats.thresholds == [0.5, 1.0] and feats.hook == "blocks.3.hook_resid_pre"
    assert feats.sae_name == "reference" and feats.detector == obj["detector"] and feats.set_test_auroc == 0.8
    assert [r["index"] for r in feats.table] == [7, 3]
    assert feats.table[0]["score"] == 0.9 and feats.table[0]["top_token"] == " idiot"
    assert feats.table[1]["top_token"] is None
    path = feats.save(tmp_path / "f.json")
    back = Features.load(path)
    assert back == obj and back.latents == [7, 3] and "latents=[7, 3]" in repr(back)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(SaedetoxError, match="no 'selected'"):
        Features.load(tmp_path / "bad.json")
    with pytest.raises(SaedetoxError, match="not found"):
        Features.load(tmp_path / "none.json")
