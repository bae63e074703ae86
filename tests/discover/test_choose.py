"""Specificity and output-effect filters, the token detector, and the gate record discovery writes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import CLEAN_TEXTS, TOXIC_TEXTS
from saedetox.discover import choose as ch
from saedetox.discover.detector import detector_probability
from saedetox.discover.options import UNGATED, GateOptions
from saedetox.discover.output_effect import fit_token_detector, next_token_labels, output_effects
from saedetox.errors import SaedetoxError


def _fake_acts(per_latent: dict[int, float], n_windows: int = 200, seed: int = 0):
    """token_acts stand-in: latent i fires (value 2) at one position of a share per_latent[i] of windows."""
    rng = np.random.default_rng(seed)
    fired = {i: rng.random(n_windows) < share for i, share in per_latent.items()}

    def token_acts(lm, sae, texts, latents, hook=None, batch_size=32):
        out = []
        for w in range(len(texts)):
            a = np.zeros((10, len(latents)), dtype=np.float32)
            for j, i in enumerate(latents):
                a[3, j] = 2.0 if fired[i][w] else 0.5
            out.append(a)
        return out, [[0] * 10 for _ in texts]

    return token_acts


def test_a_latent_that_fires_on_clean_text_is_filtered(monkeypatch):
    # latent 7 opens on 60% of clean windows at its own threshold (1.0), latents 1-3 on ~2%
    monkeypatch.setattr(ch, "token_acts", _fake_acts({7: 0.6, 1: 0.02, 2: 0.02, 3: 0.0}))
    monkeypatch.setattr(ch, "_effects", lambda lm, sae, hook, lat, *a: {int(i): 0.1 for i in lat})
    windows = ch.Windows([f"w{i}" for i in range(200)], [f"t{i}" for i in range(200)], 30)
    pool, auc = [7, 1, 2, 3], {7: 0.9, 1: 0.8, 2: 0.7, 3: 0.65}
    own = dict.fromkeys(pool, 1.0)
    args = (None, None, "h", pool, auc, own, 3, 0.6)
    kept = ch.choose(*args, GateOptions(), [], [], windows)
    assert kept.selected == [7, 1, 2]  # no filter: ranked order
    assert kept.clean_open[7] == pytest.approx(np.mean(np.random.default_rng(0).random(200) < 0.6))
    specific = ch.choose(*args, GateOptions(max_clean_open=0.04), [], [], windows)
    assert specific.selected == [1, 2, 3]
    assert all(specific.clean_open[i] <= 0.04 for i in specific.selected)


def test_output_effect_filter(monkeypatch):
    monkeypatch.setattr(ch, "_effects", lambda lm, sae, hook, lat, *a: {int(i): {5: 0.2, 6: -0.1}[i] for i in lat})
    got = ch.choose(
        None, None, "h", [6, 5], {5: 0.7, 6: 0.7}, {}, 2, 0.6, GateOptions(min_output_effect=0.0), [], [], None
    )
    assert got.selected == [5] and got.output_effect == {5: 0.2, 6: -0.1}


def test_options_refuse_bad_values():
    for bad in ({"gate_rate": 1.5}, {"max_clean_open": -0.1}, {"window_words": 0}, {"detector_target": "x"}):
        with pytest.raises(SaedetoxError):
            GateOptions(**bad)
    assert GateOptions().gate_rate == 0.05 and GateOptions().needs_windows and GateOptions().joint_gate
    assert GateOptions(gate_rate=None) == GateOptions(gate_rate=0) == UNGATED  # null in a config: off
    assert (
        not UNGATED.needs_windows
        and not UNGATED.joint_gate
        and GateOptions(gate_rate=0, max_clean_open=0.1).needs_windows
    )


def test_output_effect_against_a_second_computation(gpt2):
    """The relative drop of the target-token mass, recomputed with a plain forward hook on the block."""
    lm = gpt2
    hook = "blocks.1.hook_resid_pre"
    g = torch.Generator().manual_seed(1)
    dirs = torch.randn(2, lm.d_model, generator=g)
    targets = [5, 17, 40]
    texts = TOXIC_TEXTS[:3]
    got = output_effects(lm, hook, dirs, texts, targets, push=0.5, batch_size=2)
    block = lm.model.transformer.h[1]
    tok = lm.tokenizer
    rows = [[tok.bos_token_id] + tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    base_h = []
    h = block.register_forward_pre_hook(lambda m, a: base_h.append(_centred(a[0][0, 1:]).norm(dim=-1)))
    with torch.no_grad():
        base = [torch.softmax(lm.model(torch.tensor([r])).logits[0, 1:], -1)[:, targets].sum() for r in rows]
    h.remove()
    size = 0.5 * float(torch.cat(base_h).median())
    for j in range(2):
        u = dirs[j] / dirs[j].norm()

        def shift(m, a, u=u):
            x = a[0].clone()
            x[:, 1:] -= size * u
            return (x, *a[1:])

        h = block.register_forward_pre_hook(shift)
        with torch.no_grad():
            st = [torch.softmax(lm.model(torch.tensor([r])).logits[0, 1:], -1)[:, targets].sum() for r in rows]
        h.remove()
        assert got[j] == pytest.approx(1 - float(sum(st)) / float(sum(base)), rel=1e-4, abs=1e-6)


def _centred(x: torch.Tensor) -> torch.Tensor:
    return x - x.mean(-1, keepdim=True)  # GPT-2 has LayerNorm: the residual norm is measured centred


def test_token_detector_falls_when_the_toxic_signal_goes_away():
    # latent 0 is high exactly where the next token is a target (id 9); latent 1 is noise
    rng = np.random.default_rng(0)
    acts, ids = [], []
    for _ in range(300):
        seq = rng.choice([1, 2, 3, 9], size=12, p=[0.3, 0.3, 0.3, 0.1]).tolist()
        a = np.c_[np.zeros(12), rng.exponential(1.0, 12)].astype(np.float32)
        for t in range(11):
            a[t, 0] = rng.exponential(3.0) if seq[t + 1] == 9 else rng.exponential(0.2)
        acts.append(a)
        ids.append(seq)
    assert next_token_labels([[1, 9, 2, 9]], [9])[0].tolist() == [True, False, True]
    det = fit_token_detector([4, 8], acts, ids, [9])
    assert det["pooling"] == "token" and det["coef"][0] > 0
    seq = torch.zeros(1, 8, 2)
    seq[0, 2, 0] = 6.0  # the toxic signal at position 2, gone from position 3 on
    p = detector_probability(det, seq)
    assert p[0, 2] > 0.9 and p[0, 5] < 0.5 and p[0, 5] < p[0, 2]
    # the text detector's running maximum never falls
    p_max = detector_probability({**det, "pooling": "max"}, seq)
    assert p_max[0, 5] == pytest.approx(float(p_max[0, 2]))


def test_discovery_records_the_gate_and_token_detector(gpt2, sae_dir):
    from saedetox.discover.select import discover
    from saedetox.discover.sets import DiscoverySets
    from saedetox.sae.load import load_sae

    sae = load_sae(str(sae_dir), model_uses_layernorm=gpt2.uses_layernorm)
    data = DiscoverySets(TOXIC_TEXTS * 3, CLEAN_TEXTS * 3, TOXIC_TEXTS, CLEAN_TEXTS, TOXIC_TEXTS, CLEAN_TEXTS)
    windows = ch.Windows([" ".join(CLEAN_TEXTS[i:] + CLEAN_TEXTS[:i]) for i in range(6)] * 10, CLEAN_TEXTS * 5, 30)
    opts = GateOptions(gate_rate=0.1, detector_target="next-token", max_clean_open=0.5)
    f = discover(gpt2, sae, data, method="auroc", k=5, min_auroc=0.0, gate=opts, windows=windows)
    gate = f["gate"]
    assert gate["calibration"] == "joint" and gate["select_false_open"] <= 0.1
    assert len(f["thresholds"]) == len(f["selected"]) == len(gate["test_open_per_latent"])
    assert all(x["clean_open"] <= 0.5 and isinstance(x["output_effect"], float) for x in f["features"])
    if f["detector"] is not None:
        assert f["detector"]["pooling"] == "token" and "intercept_fit" in f["detector"]
    assert f["gate_options"]["gate_rate"] == 0.1
    plain = discover(gpt2, sae, data, method="auroc", k=5, min_auroc=0.0, gate=UNGATED)
    assert "gate" not in plain and plain["gate_options"]["gate_rate"] == 0
    # the default: the joint gate at 0.05 on the windows given
    default = discover(gpt2, sae, data, method="auroc", k=5, min_auroc=0.0, windows=windows)
    assert default["gate"]["calibration"] == "joint" and default["gate"]["rate"] == 0.05
    assert default["gate"]["select_false_open"] <= 0.05 and default["gate_options"]["gate_rate"] == 0.05


def test_a_joint_gate_without_clean_windows_is_one_clear_error(gpt2, sae_dir, tmp_path):
    """A data folder without the reference corpus (a user's own data): one line naming both ways out."""
    from saedetox.discover.select import discover
    from saedetox.discover.sets import DiscoverySets
    from saedetox.sae.load import load_sae

    sae = load_sae(str(sae_dir), model_uses_layernorm=gpt2.uses_layernorm)
    data = DiscoverySets(TOXIC_TEXTS * 3, CLEAN_TEXTS * 3, TOXIC_TEXTS, CLEAN_TEXTS, TOXIC_TEXTS, CLEAN_TEXTS)
    (tmp_path / "mine.txt").write_text("my own texts")
    with pytest.raises(SaedetoxError, match="gate_rate to 0") as e:
        discover(gpt2, sae, data, method="auroc", k=2, min_auroc=0.0, data_dir=str(tmp_path))
    assert "\n" not in str(e.value) and "data_dir" in str(e.value)
    off = discover(gpt2, sae, data, method="auroc", k=2, min_auroc=0.0, data_dir=str(tmp_path), gate=UNGATED)
    assert off["selected"] and "gate" not in off


def test_a_token_detector_from_features_json_steers(gpt2, sae_dir):
    """features.json's next-token detector (with its fit notes) is accepted by adaptive steering, pooled per token."""
    from saedetox.steering.spec import Intervention, default_detector

    det = {"kind": "latents", "latents": [3, 1], "coef": [1.0, 2.0], "intercept": -1.0, "scale": [1.0, 1.0]}
    det.update(pooling="token", target="next-token", intercept_fit=0.5)
    got = default_detector({"selected": [1, 3], "detector": det})
    assert got["pooling"] == "token" and got["coef"] == [2.0, 1.0] and "target" not in got
    iv = Intervention(sae=str(sae_dir), latents=[1, 3], mode="adaptive", strength=1.0, detector=got)
    assert iv.detector["pooling"] == "token"
