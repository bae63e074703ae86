"""``saedetox info --model gpt2 --sae gpt2-small-res-jb/blocks.6.hook_resid_pre``, the first command of
docs/paper-models.md, on the offline hub mirror: it prints the preflight; a missing cache file is one error line."""

from __future__ import annotations

import json

import hub_mirror as hm
from helpers import run_cli as run

ARGS = ["info", "--model", "gpt2", "--sae", "gpt2-small-res-jb/blocks.6.hook_resid_pre", "--device", "cpu"]


def test_info_prints_the_preflight_of_the_paper_sae(hub, capsys):
    code, out, err = run(ARGS, capsys)
    assert code == 0, err
    assert "model: gpt2" in out and "preflight:" in out and "norm: LayerNorm" in out
    code, out, err = run([*ARGS, "--json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    width = hm.SMALL_OVERRIDES["gpt2"]["n_embd"]
    assert data["d_model"] == width and data["layers"] == 12 and data["vocab"] == 50257
    assert data["sae"]["hook_name"] == "blocks.6.hook_resid_pre" and data["sae"]["center"] is True
    pf = data["preflight"]
    assert pf["d_in"] == pf["d_model"] == width and pf["n_tokens"] > 0
    assert "explained_variance" in pf and "ce_delta" in pf  # random stand-ins: no value is asserted


def test_info_with_a_file_missing_from_the_cache_is_one_error_line(tmp_path, capsys):
    mini = hm.build_mirror(tmp_path / "hub", models=("gpt2",), saes=[f"{hm.RES_JB}/blocks.6.hook_resid_pre"])
    weights = "blocks.6.hook_resid_pre/sae_weights.safetensors"
    with mini.active(), mini.hidden(hm.RES_JB_REPO, weights):
        code, out, err = run(ARGS, capsys)
    assert code == 2 and out == "", out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: SAE gpt2-small-res-jb/blocks.6.hook_resid_pre:"), err
    assert weights in lines[0] and "missing from the local Hugging Face cache" in lines[0]
