"""The methods registry: a method registered from outside the package runs through the CLI, a sweep and the API.

The toy method adds a fixed random vector at one residual hook. It is declared here only, through
the registry's public API, and unregistered afterwards.
"""

from __future__ import annotations

import json

import pytest
import torch

import saedetox as sd
from helpers import run_cli, tiny_gpt2
from saedetox.errors import SaedetoxError
from saedetox.experiments.config import parse_config
from saedetox.experiments.sweep import run_sweep
from saedetox.methods.registry import get_method

HOOK = "blocks.1.hook_resid_pre"
EVAL = {"n_prompts": 3, "samples": 2, "max_new_tokens": 4, "batch_size": 6, "clean_texts": 0, "judges": ["profanity"]}


def _toy(lm, spec=None, scale: float = 50.0, **_):
    vector = torch.randn(lm.d_model, generator=torch.Generator().manual_seed(0))
    push = sd.SteeringSpec([sd.Intervention(vector=vector.tolist(), hook=HOOK, strength=scale, label="toy")])
    steerer = sd.Steerer(lm, push)
    return sd.Method(name="toy", context=lambda: steerer, details={"hook": HOOK, "scale": scale})


@pytest.fixture
def toy():
    sd.register_method("toy", summary="a fixed random vector at one hook")(_toy)
    yield "toy"
    sd.unregister_method("toy")
    assert "toy" not in sd.method_names()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("toy") / "m"
    lm = tiny_gpt2()
    lm.model.save_pretrained(path)
    lm.tokenizer.save_pretrained(path)
    return path


def _texts(run) -> str:
    return (run / "generations.jsonl").read_text()


def test_a_registered_method_runs_through_the_cli(toy, model_dir, tmp_path, capsys):
    code, out, _ = run_cli(["evaluate", "--help"], capsys)
    assert code == 0 and "toy" in out  # the --method choices come from the registry
    argv = ["evaluate", "--model", model_dir, "--n-prompts", 3, "--samples", 2, "--max-new-tokens", 4]
    argv += ["--clean-texts", 0, "--judges", "profanity", "--batch-size", 6]
    code, _, err = run_cli(argv + ["--out", tmp_path / "toy", "--method", "toy"], capsys)
    assert code == 0, err
    config = json.loads((tmp_path / "toy" / "metrics.json").read_text())["config"]
    assert config["method"] == "toy" and config["scale"] == 50.0
    code, _, err = run_cli(argv + ["--out", tmp_path / "none", "--method", "none"], capsys)
    assert code == 0, err
    assert _texts(tmp_path / "toy") != _texts(tmp_path / "none")  # the vector changed what was generated
    code, _, err = run_cli(argv + ["--out", tmp_path / "md", "--method", "meandiff", "--mode", "token"], capsys)
    assert code == 2 and "has modes constant, adaptive" in err and not (tmp_path / "md").exists()
    sd.unregister_method("toy")
    code, _, err = run_cli(argv + ["--out", tmp_path / "gone", "--method", "toy"], capsys)
    assert code == 2 and "toy" in err and not (tmp_path / "gone").exists()


def test_a_registered_method_runs_in_a_sweep(toy, model_dir, tmp_path):
    raw = {"model": str(model_dir), "sae": None, "evaluation": EVAL, "runs": [{"method": "none"}, {"method": toy}]}
    results = run_sweep(parse_config(raw), tmp_path / "sweep")
    assert set(results) == {"none", "toy"}
    assert results["toy"]["config"]["method"] == "toy" and results["toy"]["config"]["curve"] is None
    assert "toy" in (tmp_path / "sweep" / "report.html").read_text()  # the report shows a method it has no style for
    with pytest.raises(SaedetoxError, match="push levels are for sae and meandiff and sae-targeted .* runs, not 'toy'"):
        parse_config(raw | {"runs": [{"method": "toy", "push": [0.1]}]})


def test_a_registered_method_runs_through_the_api(toy, tmp_path):
    lm = tiny_gpt2()
    cfg = sd.EvalConfig(**EVAL)
    toy_run = sd.evaluate(lm, tmp_path / "toy", cfg, "toy")
    plain = sd.evaluate(lm, tmp_path / "none", cfg, None)
    assert toy_run["config"]["method"] == "toy"
    assert _texts(tmp_path / "toy") != _texts(tmp_path / "none")
    assert plain["config"]["method"] == "none"
    with pytest.raises(SaedetoxError, match="takes no push level"):
        sd.build_method(lm, "toy", push=0.2)


def test_declarations_the_callers_read():
    sae, meandiff, surgery = get_method("sae"), get_method("meandiff"), get_method("surgery")
    assert "spec" in sae.needs and sae.modes[0] == "constant" and sae.export_modes == ("constant",)
    assert meandiff.modes == ("constant", "adaptive") and meandiff.push and "contrast" in meandiff.needs
    assert surgery.export is not None and not surgery.numeric_tiers and not surgery.modes
    assert get_method("aura").export is None and not get_method("aura").curve
    with pytest.raises(SaedetoxError, match="Unknown method 'magic'"):
        get_method("magic")
    with pytest.raises(SaedetoxError, match="already registered"):
        sd.register_method("sae")(_toy)


def test_export_through_the_registry_writes_what_export_baseline_writes(tmp_path):
    from saedetox.methods.contrast import ContrastData
    from saedetox.methods.export import export_baseline

    data = ContrastData(
        ["you stupid idiot, shut up", "what a damn fool you are", "go to hell, idiot"],
        ["you are a kind person, thanks", "what a lovely day it is", "go to the park"],
    )
    lm = tiny_gpt2()
    get_method("meandiff").export(lm, tmp_path / "reg", data=data, tier="low", hook=HOOK)
    export_baseline(lm, "meandiff", tmp_path / "direct", hook=HOOK, tier="low", data=data)
    reg = json.loads((tmp_path / "reg" / "saedetox_export.json").read_text())
    direct = json.loads((tmp_path / "direct" / "saedetox_export.json").read_text())
    assert reg == direct and reg["vector_provenance"]["hook"] == HOOK
