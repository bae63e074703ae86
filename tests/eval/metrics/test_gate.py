"""The gate's selectivity numbers: checked by hand, and against discovery's per-text maxima."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import CLEAN_TEXTS, TOXIC_TEXTS
from saedetox.discover.features import Features
from saedetox.discover.rank_stats import text_stats
from saedetox.eval.metrics.gate import gate_quality, gate_summary
from saedetox.sae.load import load_sae


def test_summary_by_hand():
    margin = np.array([0.5, -1.0, 2.0, -0.2, 0.1])
    is_open = margin > 0
    toxic = np.array([1, 0, 1, 1, 0])
    out = gate_summary(margin, is_open, toxic, np.array([True, False, False, False]))
    assert out["open_rate"] == pytest.approx(3 / 5)
    assert out["toxic_rate_open"] == pytest.approx(2 / 3) and out["toxic_rate_shut"] == pytest.approx(1 / 2)
    # toxic margins 0.5, 2.0, -0.2 vs clean -1.0, 0.1: pairs won 2 + 2 + 1 of 6
    assert out["auroc_toxic"] == pytest.approx(5 / 6)
    # open/shut alone: TPR 2/3, TNR 1/2
    assert out["auroc_open"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert out["clean_false_open"] == 0.25 and out["clean_windows"] == 4


def test_gate_quality_matches_discovery_maxima(gpt2, sae_dir):
    sae = load_sae(str(sae_dir), model_uses_layernorm=gpt2.uses_layernorm)
    texts = TOXIC_TEXTS + CLEAN_TEXTS
    mx = text_stats(gpt2, sae, texts).max_act
    latents = [int(i) for i in np.argsort(-mx.mean(0))[:3]]
    th = [float(np.median(mx[:, i])) for i in latents]
    feats = Features({"selected": latents, "thresholds": th, "hook": sae.hook_name}, sae=sae)
    toxic = [True] * len(TOXIC_TEXTS) + [False] * len(CLEAN_TEXTS)
    out = gate_quality(gpt2, feats, texts, toxic, window_words=12)
    want_open = (mx[:, latents] > np.array(th)).any(1)
    assert out["open_rate"] == pytest.approx(want_open.mean())
    assert out["toxic_rate_open"] == pytest.approx(np.asarray(toxic)[want_open].mean())
    assert out["window_words"] == 12 and out["clean_windows"] > 100
    assert 0 <= out["clean_false_open"] <= 1 and out["latents"] == 3
