"""Every supported architecture through every command and method, on tiny random models.

Each cell is a success, or a refusal with one ``error:`` line naming the real reason (no
AttributeError, no traceback). Where the export folds, the folded checkpoint's logits equal
the hooked model's.
"""

from __future__ import annotations

import json
import re
import sys
import time

import pytest
import torch

from helpers import FAMILY_BUILDERS, write_sae
from saedetox.cli.app import main
from saedetox.eval.config import EvalConfig
from saedetox.eval.run import evaluate
from saedetox.eval.sampler.sampling import SamplingConfig, sample
from saedetox.methods.contrast import ContrastData
from saedetox.methods.registry import build_method
from saedetox.model.load import load_model
from saedetox.steering.spec import Intervention, SteeringSpec
from steering.test_export import check_folded

FAMILIES = list(FAMILY_BUILDERS)
FOLDS_AT_LAYER_1 = {"gpt2", "llama", "neox", "opt"}  # the others have no bias after their sub-blocks
DATA = ContrastData(
    ["you stupid idiot, shut up", "what a damn fool you are", "go to hell, idiot", "shut up you moron"],
    ["you are a kind person, thanks", "what a lovely day it is", "go to the park", "please be quiet, my friend"],
)
TINY = ["--n-prompts", "2", "--samples", "2", "--max-new-tokens", "3", "--clean-texts", "0", "--batch-size", "4"]
TIMES: dict[str, float] = {}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Per family (built on first use): a saved tiny model and SAEs at layers 0 and 1."""
    cache: dict[str, tuple] = {}

    def get(family: str):
        if family not in cache:
            root = tmp_path_factory.mktemp(family)
            lm = FAMILY_BUILDERS[family]()
            lm.model.save_pretrained(root / "model")
            lm.tokenizer.save_pretrained(root / "model")
            for layer in (0, 1):
                write_sae(root / f"sae{layer}", lm.d_model, hook=f"blocks.{layer}.hook_resid_pre", seed=layer)
            cache[family] = (root, load_model(str(root / "model"), dtype="float32", device="cpu"))
        return cache[family]

    return get


@pytest.fixture(autouse=True, scope="module")
def _report_wall_time():
    start = time.time()
    yield
    TIMES["matrix"] = time.time() - start
    print(f"\narchitecture matrix: {TIMES['matrix']:.1f} s", file=sys.stderr)


def cli(argv, capsys):
    with pytest.raises(SystemExit) as ex:
        main([str(a) for a in argv])
        sys.exit(0)
    out = capsys.readouterr()
    return ex.value.code, out.out, out.err


def expand(pattern: str) -> list[str]:
    """``blocks.{0..1}.hook_{a,b}; blocks.{3}.hook_c`` → every name."""
    names = []
    for part in pattern.split("; "):
        m = re.fullmatch(r"blocks\.\{([^}]*)\}\.hook_(?:\{([^}]*)\}|(\w+))", part)
        assert m, part
        layers = m.group(1)
        lo_hi = re.fullmatch(r"(\d+)\.\.(\d+)", layers)
        idx = range(int(lo_hi[1]), int(lo_hi[2]) + 1) if lo_hi else [int(x) for x in layers.split(",")]
        kinds = (m.group(2) or m.group(3)).split(",")
        names += [f"blocks.{i}.hook_{k}" for i in idx for k in kinds]
    return names


@pytest.mark.parametrize("family", FAMILIES)
def test_info(family, world, capsys):
    root, lm = world(family)
    code, out, err = cli(["info", "--model", root / "model", "--json"], capsys)
    assert code == 0, err
    hooks = expand(json.loads(out)["hooks"])
    for h in hooks:
        lm.site(h)  # every listed hook resolves
    kinds = {h.split(".hook_")[1] for h in hooks}
    want = {"resid_pre", "resid_post", "attn_out"} | ({"mlp_out"} if family != "opt" else set())
    assert kinds == want and len(hooks) == len(want) * lm.n_layers


@pytest.mark.parametrize("family", FAMILIES)
def test_steered_generate(family, world, capsys):
    root, _ = world(family)
    argv = ["generate", "--model", root / "model", "-p", "The library opens", "-n", "2", "--max-new-tokens", "3"]
    code, out, err = cli([*argv, "--sae", root / "sae1", "--features", "1,2", "--strength", "3"], capsys)
    assert code == 0, err
    assert out.count("The library opens\u2502") == 2


@pytest.mark.parametrize("family", FAMILIES)
def test_export(family, world, capsys, tmp_path):
    root, lm = world(family)
    for layer in (1, 0):
        sae = root / f"sae{layer}"
        argv = ["export", "--model", root / "model", "--sae", sae, "--features", "1,4,9", "--strength", "1.5"]
        code, out, err = cli([*argv, "--out", tmp_path / f"out{layer}"], capsys)
        if layer == 1 and family not in FOLDS_AT_LAYER_1:
            assert code == 2 and err.count("\n") == 1 and err.startswith("error: ")
            assert "cannot be folded exactly" in err and "blocks.0.hook_resid_pre" in err
            assert not (tmp_path / f"out{layer}").exists()
            continue
        assert code == 0, err
        spec = SteeringSpec([Intervention(sae=str(sae), latents=[1, 4, 9], strength=1.5)])
        check_folded(lm, tmp_path / f"out{layer}", spec)


@pytest.mark.parametrize("family", FAMILIES)
def test_evaluate_steered(family, world, capsys, tmp_path):
    root, _ = world(family)
    argv = ["evaluate", "--model", root / "model", "--method", "sae", "--sae", root / "sae1", "--features", "1,2"]
    argv += ["--strength", "3"]
    code, out, err = cli([*argv, "--judges", "profanity,probe", *TINY, "--out", tmp_path / "run"], capsys)
    assert code == 0, err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert set(metrics["toxicity"]) == {"profanity", "probe"}


@pytest.mark.parametrize("method", ["aura", "surgery"])
@pytest.mark.parametrize("family", FAMILIES)
def test_weight_level_baselines(family, method, world):
    _, lm = world(family)
    before = {k: v.clone() for k, v in lm.model.state_dict().items()}
    m = build_method(lm, method, data=DATA, tier="medium")
    with m.context():
        (samples,) = sample(lm, ["The library opens"], SamplingConfig(n_samples=2, max_new_tokens=3, batch_size=4))
    assert len(samples) == 2
    if method == "aura":
        c, d = lm.model.config, lm.d_model
        m_units = {"gpt2": 4 * d, "opt": getattr(c, "ffn_dim", 0)}.get(family) or c.intermediate_size
        per_layer = m_units + d if family in ("gpt2", "neox", "opt") else 2 * m_units + d  # gated: gate + up + down
        assert m.details["aura"]["n_units"] == lm.n_layers * per_layer
        assert sum(m.details["aura"]["modules"].values()) == m.details["aura"]["n_dampened"] > 0
    else:
        s = m.details["surgery"]
        assert s["n_rows"] == sum(s["rows_per_layer"]) >= 1 and s["alpha"] > 0 and s["probe_layer"] == lm.n_layers
    after = lm.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weight edits undone, hooks removed


def test_baseline_details_reach_metrics(world, tmp_path):
    _, lm = world("gpt2")
    cfg = EvalConfig(n_prompts=2, samples=2, max_new_tokens=3, judges=("profanity",), clean_texts=0, batch_size=4)
    for method in ("aura", "surgery"):
        m = build_method(lm, method, data=DATA, tier="medium")
        evaluate(lm, tmp_path / method, cfg, m)
        config = json.loads((tmp_path / method / "metrics.json").read_text())["config"]
        assert config[method] == json.loads(json.dumps(m.details[method]))
