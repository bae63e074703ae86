"""Feature ids as people write them: Neuronpedia ids and URLs, SAE-Lens release/sae_id:index, mixed lists."""

from __future__ import annotations

import json

import pytest

from helpers import run_cli, write_sae
from saedetox.discover.features import feature_detector, feature_thresholds, features_file, parse_features
from saedetox.errors import SaedetoxError
from saedetox.sae.load import sae_names
from saedetox.sae.loaded import LoadedSAE
from saedetox.steering.spec import default_detector
from saedetox.steering.steer import steering_spec

JB6 = "gpt2-small-res-jb/blocks.6.hook_resid_pre"  # SAE-Lens registry name; Neuronpedia: gpt2-small/6-res-jb
NP6 = "gpt2-small/6-res-jb"


def loaded(source: str, neuronpedia: str | None) -> LoadedSAE:
    return LoadedSAE(sae=None, source=source, hook_name="blocks.6.hook_resid_pre", neuronpedia_id=neuronpedia)


def test_registry_names_resolve_offline():
    assert sae_names(JB6) == (JB6, NP6)  # the SAE-Lens registry ships with the package
    assert sae_names("reference") == ("reference", None)


@pytest.mark.parametrize(
    "text, want",
    [
        ("3,17,42", [3, 17, 42]),
        (f"{NP6}/1234", [1234]),
        (f"https://www.neuronpedia.org/{NP6}/1234", [1234]),
        (f"https://neuronpedia.org/{NP6}/1234/", [1234]),
        (f"{JB6}:1234", [1234]),
        (f"5, {NP6}/7,https://www.neuronpedia.org/{NP6}/8 {JB6}:9", [5, 7, 8, 9]),
    ],
)
def test_ids_resolve_for_the_registry_sae(text, want):
    assert parse_features(text, JB6) == want
    assert parse_features(text, loaded(JB6, NP6)) == want


def test_saelens_id_matches_a_folder_sae_by_its_neuronpedia_id(tmp_path):
    folder = write_sae(tmp_path / "sae", 16, d_sae=64)
    cfg = json.loads((folder / "cfg.json").read_text())
    cfg["metadata"]["neuronpedia_id"] = NP6
    (folder / "cfg.json").write_text(json.dumps(cfg))
    assert sae_names(str(folder)) == (str(folder), NP6)
    assert parse_features(f"{JB6}:11, {NP6}/12", str(folder)) == [11, 12]
    spec = steering_spec(f"https://www.neuronpedia.org/{NP6}/12", sae=str(folder), strength=1.0)
    assert spec.interventions[0].latents == [12]
    assert steering_spec([3, f"{NP6}/4"], sae=str(folder), strength=1.0).interventions[0].latents == [3, 4]


@pytest.mark.parametrize(
    "text, sae, words",
    [
        ("gpt2-small/7-res-jb/12", JB6, ["gpt2-small/7-res-jb", JB6, NP6]),
        ("gpt2-small-res-jb/blocks.7.hook_resid_pre:12", JB6, ["blocks.7", JB6]),
        (f"{NP6}/12", "reference", ["reference", "no Neuronpedia id"]),
        (f"3, {NP6}/12, gpt2-small/8-res-jb/1", loaded(JB6, NP6), ["gpt2-small/8-res-jb"]),
        (f"{NP6}/12", None, ["which SAE"]),
    ],
)
def test_ids_of_another_sae_are_refused(text, sae, words):
    with pytest.raises(SaedetoxError) as err:
        parse_features(text, sae)
    msg = str(err.value)
    assert "\n" not in msg and all(w in msg for w in words), msg


@pytest.mark.parametrize(
    "text",
    ["abc", f"{NP6}/x", "https://www.neuronpedia.org/gpt2-small/12", f"{JB6}:", "1,,2,-3", NP6, "1.5"],
)
def test_malformed_ids_are_refused_in_one_line(text):
    with pytest.raises(SaedetoxError) as err:
        parse_features(text, JB6)
    assert "\n" not in str(err.value)


def test_a_long_list_is_never_a_file_name():
    many = ",".join(str(i) for i in range(3000))  # far longer than a file name may be
    assert parse_features(many) == list(range(3000))
    assert features_file(many) is None
    assert feature_thresholds(many) is None and feature_detector(many) is None and default_detector(many) is None
    with pytest.raises(SaedetoxError, match="'oops' is not a latent"):
        parse_features(many + ",oops")
    ids = ",".join(f"{NP6}/{i}" for i in range(300))
    assert parse_features(ids, JB6) == list(range(300))


def test_a_json_name_is_still_a_file(tmp_path):
    with pytest.raises(SaedetoxError, match="not found"):
        parse_features(str(tmp_path / "feats.json"))
    (tmp_path / "feats.json").write_text(json.dumps({"selected": [4, 2]}))
    assert parse_features(str(tmp_path / "feats.json")) == [4, 2]


def test_cli_refuses_an_id_of_another_sae_before_loading_anything(capsys, tmp_path):
    argv = ["generate", "--model", "reference", "--sae", "reference", "-p", "Hello", "--max-new-tokens", "2"]
    code, out, err = run_cli([*argv, "--features", f"3,{NP6}/12"], capsys)
    assert code == 2 and "no Neuronpedia id" in err and len(err.strip().splitlines()) == 1, err
    long_bad = ",".join(str(i) for i in range(2000)) + ",x7"
    code, out, err = run_cli([*argv, "--features", long_bad], capsys)
    assert code == 2 and "'x7' is not a latent" in err and len(err.strip().splitlines()) == 1, err
