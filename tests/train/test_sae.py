"""SAE training on a tiny model: a valid SAE-Lens folder that the normal loader reads back."""

from __future__ import annotations

import json

import torch

from helpers import tiny_gpt2
from saedetox.data.calibration import CALIBRATION_TEXTS
from saedetox.sae.load import load_sae
from saedetox.train.sae import BatchTopKSAE, SAETrainConfig, train_sae


def test_batch_topk_keeps_k_per_token_on_average():
    sae = BatchTopKSAE(8, 32, k=4, seed=0)
    pre = torch.relu(torch.randn(10, 32)) + 0.01
    acts, thr = sae.batch_topk(pre)
    assert int((acts > 0).sum()) == 40
    assert thr == float(acts[acts > 0].min())


def test_train_sae_writes_loadable_folder(tmp_path):
    lm = tiny_gpt2()
    lm.model.save_pretrained(tmp_path / "m")
    lm.tokenizer.save_pretrained(tmp_path / "m")
    texts = list(CALIBRATION_TEXTS) * 8
    cfg = SAETrainConfig(
        model=str(tmp_path / "m"),
        hook="blocks.1.hook_resid_pre",
        width=64,
        k=4,
        out=str(tmp_path / "s"),
        tokens=20_000,
        batch_size=256,
        buffer_tokens=4096,
        context=32,
        device="cpu",
    )
    rep = train_sae(cfg, texts=texts, eval_texts=list(CALIBRATION_TEXTS[:8]))
    sae = load_sae(str(tmp_path / "s"), model_uses_layernorm=True)
    assert sae.architecture == "jumprelu" and sae.hook_name == cfg.hook and sae.d_sae == 64 and not sae.center
    assert 0.3 < rep["explained_variance"] <= 1.0, rep
    assert 1 <= rep["mean_l0"] <= 16
    assert 0 <= rep["dead_share"] < 0.5
    info = json.loads((tmp_path / "s" / "training.json").read_text())
    assert info["config"]["width"] == 64 and info["threshold"] > 0
