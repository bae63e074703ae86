"""Baselines exported as plain checkpoints, auditable from their provenance file alone."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from saedetox.errors import SaedetoxError
from saedetox.methods.contrast import ContrastData
from saedetox.methods.export import export_baseline
from saedetox.methods.meandiff import meandiff_direction
from saedetox.methods.surgery_probe import ProbeConfig

DATA = ContrastData(
    ["you stupid idiot, shut up", "what a damn fool you are", "go to hell, idiot", "shut up you moron"],
    ["you are a kind person, thanks", "what a lovely day it is", "go to the park", "please be quiet, my friend"],
)


def test_meandiff_export_records_where_its_vector_came_from(tmp_path, gpt2):
    hook = "blocks.2.hook_resid_pre"
    export_baseline(gpt2, "meandiff", tmp_path / "out", hook=hook, tier="high", data=DATA)
    meta = json.loads((tmp_path / "out" / "saedetox_export.json").read_text())
    origin, (iv,), (folded,) = meta["vector_provenance"], meta["interventions"], meta["folded"]
    assert origin["method"] == "meandiff" and origin["hook"] == hook and origin["n_toxic"] == len(DATA.toxic)
    assert iv["vector_source"] == "raw vector (meandiff)" and iv["median_norm"] > 0 and iv["tier"] == "high"
    vector = torch.tensor(meta["steering"]["interventions"][0]["vector"])
    assert torch.allclose(vector, meandiff_direction(gpt2, hook, DATA), atol=1e-6)
    assert folded["parameter"] == "transformer.h.1.mlp.c_proj.bias"
    new = load_file(tmp_path / "out" / "model.safetensors")[folded["parameter"]]
    old = gpt2.model.state_dict()[folded["parameter"]]
    assert torch.allclose(new - old, -iv["alpha"] * vector, atol=1e-5)  # shift = −α · vector, from the file alone


def test_surgery_export_and_refusals(tmp_path, gpt2):
    export_baseline(gpt2, "surgery", tmp_path / "s", strength=0.2, data=DATA, probe=ProbeConfig(epochs=5))
    meta = json.loads((tmp_path / "s" / "saedetox_export.json").read_text())
    assert meta["kind"] == "surgery" and meta["edit"]["alpha"] == 0.2 and meta["surgery"]["n_rows"] > 0
    with pytest.raises(SaedetoxError, match="cannot be exported"):
        export_baseline(gpt2, "aura", tmp_path / "a", data=DATA)
    with pytest.raises(SaedetoxError, match="named tier"):
        export_baseline(gpt2, "surgery", tmp_path / "b", tier=0.3, data=DATA)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
