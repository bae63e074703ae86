"""Discovery: ranking statistics against hand computation; rank / select / test splits kept apart."""

from __future__ import annotations

import dataclasses
import inspect
import random

import numpy as np
import pytest
import torch
from scipy.stats import rankdata
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from helpers import write_sae
from saedetox.cli.discover import discover_cmd
from saedetox.data.calibration import CALIBRATION_TEXTS
from saedetox.discover import DEFAULT_K
from saedetox.discover.detector import detector_logit, detector_probability
from saedetox.discover.options import UNGATED
from saedetox.discover.rank_stats import METHODS, auroc_per_latent, text_stats
from saedetox.discover.select import discover
from saedetox.discover.sets import DiscoverySets
from saedetox.errors import SaedetoxError
from saedetox.experiments.config import DiscoveryCfg
from saedetox.model.capture import capture
from saedetox.sae.load import load_sae

TOXIC = ["you stupid idiot, shut up", "what a damn fool you are", "shut up you fucking moron", "go to hell, idiot"]
CLEAN = ["you are a kind person, thanks", "what a lovely day it is", "please be quiet, my friend", "go to the park"]
INSULTS = ["You stupid idiot,", "Damn it, you fool,", "Shut up, idiot:", "What the hell, moron,", "Fuck you,"]
POLITE = ["My dear friend,", "Good news:", "By the way,", "As we planned,", "Thank you,"]


def pairs() -> tuple[list[str], list[str]]:
    """Toxic/neutral pairs: the same sentence after an insult or after a polite opener."""
    tox = [f"{a} {s[0].lower()}{s[1:]}" for s in CALIBRATION_TEXTS for a in INSULTS]
    cln = [f"{a} {s[0].lower()}{s[1:]}" for s in CALIBRATION_TEXTS for a in POLITE]
    return tox, cln


@pytest.fixture(scope="module")
def sae(sae_dir, gpt2):
    return load_sae(str(sae_dir), gpt2)


@pytest.fixture(scope="module")
def paired(gpt2, sae):
    """The paired sets and, computed independently, the per-text maxima of the rank and test splits."""
    sets = DiscoverySets.from_texts(*pairs(), paired=True)
    rank = np.r_[maxima(gpt2, sae, sets.toxic), maxima(gpt2, sae, sets.clean)]
    test = np.r_[maxima(gpt2, sae, sets.test_toxic), maxima(gpt2, sae, sets.test_clean)]
    return sets, rank, test


def maxima(lm, sae, texts: list[str], batch: int = 64) -> np.ndarray:
    """Per-text latent maxima computed without discovery's code: plain HF forwards, BOS left out."""
    layer = int(sae.hook_name.split(".")[1])  # blocks.L.hook_resid_pre = the input of block L
    tok, out = lm.tokenizer, []
    with torch.no_grad():
        for s in range(0, len(texts), batch):
            rows = [tok(t)["input_ids"] for t in texts[s : s + batch]]
            rows = [r if r[0] == tok.bos_token_id else [tok.bos_token_id, *r] for r in rows]
            width = max(map(len, rows))
            ids = torch.tensor([r + [tok.pad_token_id] * (width - len(r)) for r in rows])
            mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
            h = lm.model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[layer]
            out += [sae.sae.encode(h[i, 1 : len(r)]).amax(0).numpy() for i, r in enumerate(rows)]
    return np.stack(out)


def test_auroc_per_latent_matches_sklearn():
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(1, 1, (30, 5)), rng.normal(0, 1, (40, 5))
    pos[:, 4] = 0
    neg[:, 4] = 0  # all ties -> 0.5
    got = auroc_per_latent(pos, neg)
    want = [roc_auc_score(np.r_[np.ones(30), np.zeros(40)], np.r_[pos[:, j], neg[:, j]]) for j in range(5)]
    assert np.allclose(got, want)


def test_auroc_per_latent_equals_the_rank_sum_formula_to_the_bit():
    rng = np.random.default_rng(1)
    pos = np.maximum(rng.normal(-1.0, 1, (300, 64)), 0).astype(np.float32)  # sparse: many tied zeros
    neg = np.maximum(rng.normal(-1.2, 1, (410, 64)), 0).astype(np.float32)
    pos[:, 3] = rng.integers(0, 3, 300)  # heavy ties among non-zero values
    ranks = rankdata(np.concatenate([pos, neg]).T, axis=1)
    want = (ranks[:, :300].sum(1) - 300 * 301 / 2) / (300 * 410)
    assert np.array_equal(auroc_per_latent(pos, neg), want)
    pos[0, 5] = np.nan  # non-finite: ranks, NaN propagates to that column only
    got = auroc_per_latent(pos, neg)
    assert np.isnan(got[5]) and np.array_equal(np.delete(got, 5), np.delete(want, 5))


def test_text_stats_against_direct_encoding(gpt2, sae):
    acts = capture(gpt2, TOXIC, sae.hook_name)
    z = [sae.encode(a)[1:] for a in acts]  # BOS excluded
    busiest = int(torch.cat(z).amax(0).argmax())  # a latent that certainly fires
    st = text_stats(gpt2, sae, TOXIC, track=[busiest])
    assert np.allclose(st.max_act, np.stack([x.amax(0).numpy() for x in z]), atol=1e-5)
    assert np.allclose(st.sum_act, torch.cat(z).sum(0).double().numpy(), atol=1e-3)
    assert st.n_tokens == sum(x.shape[0] for x in z)
    assert np.allclose(st.fire_count, (torch.cat(z) > 0).sum(0).numpy())
    act, text_i, pos = st.top[0][0]
    assert act == pytest.approx(float(torch.cat(z)[:, busiest].max()), abs=1e-5)
    assert act == pytest.approx(float(z[text_i][pos - 1, busiest]), abs=1e-5)


@pytest.mark.parametrize("method", METHODS)
def test_reported_aurocs_come_from_the_untouched_test_split(gpt2, sae, paired, method):
    sets, rank_x, test_x = paired
    rank_select = set(sets.toxic + sets.clean + sets.select_toxic + sets.select_clean)
    assert sets.test_toxic and not set(sets.test_toxic + sets.test_clean) & rank_select
    obj = discover(gpt2, sae, sets, method=method, k=3, min_auroc=0.6)
    assert obj["splits"] == sets.sizes() and obj["splits"]["test"]["toxic"] == len(sets.test_toxic)
    sel = obj["selected"]
    assert 1 <= len(sel) <= 3 and obj["method"] == method
    assert sel == [c["index"] for c in obj["candidates"] if c["select_auroc"] >= 0.6][:3]
    # every reported AUROC equals an independent computation on the test texts alone
    y = np.r_[np.ones(len(sets.test_toxic)), np.zeros(len(sets.test_clean))]
    for f, idx in zip(obj["features"], sel, strict=True):
        assert f["index"] == idx and f["select_auroc"] >= 0.6
        assert f["test_auroc"] == pytest.approx(roc_auc_score(y, test_x[:, idx]), abs=1e-9)
        assert "heldout_auroc" not in f
    # the set detector: logistic regression on the rank split's maxima, scored on the test split
    det = obj["detector"]
    assert det["kind"] == "latents" and det["latents"] == sel and det["pooling"] == "max"
    r_x, r_y = rank_x[:, sel], np.r_[np.ones(len(sets.toxic)), np.zeros(len(sets.clean))]
    scale = r_x.std(0) + 1e-6
    clf = LogisticRegression(max_iter=2000).fit(r_x / scale, r_y)
    assert np.allclose(det["scale"], scale, rtol=1e-4)
    fitted = {**det, "intercept": det.get("intercept_fit", det["intercept"])}  # before the joint gate's shift
    np.testing.assert_allclose(
        detector_probability(fitted, r_x[:, None]), clf.predict_proba(r_x / scale)[:, 1:], atol=2e-3
    )
    t_x = test_x[:, sel]
    assert obj["set_test_auroc"] == pytest.approx(roc_auc_score(y, detector_logit(det, t_x)), abs=1e-9)
    assert obj["set_test_auroc_sum"] == pytest.approx(roc_auc_score(y, t_x.sum(1)), abs=1e-9)
    assert not {"set_heldout_auroc", "n_texts"} & set(obj)


def test_discover_returns_features_and_takes_an_sae_name(gpt2, sae, sae_dir, paired):
    from saedetox.discover.features import Features

    obj = discover(gpt2, sae, paired[0], method="auroc", k=3, min_auroc=0.6)
    assert isinstance(obj, Features) and obj.latents == obj["selected"] and obj.sae is sae
    by_name = discover(gpt2, str(sae_dir), paired[0], method="auroc", k=3, min_auroc=0.6)
    assert by_name.latents == obj.latents and by_name.sae is not sae and by_name.sae.center == sae.center


def test_nothing_passes_an_impossible_filter(gpt2, sae, paired):
    strict = discover(gpt2, sae, paired[0], method="auroc", k=3, min_auroc=1.01)
    assert strict["selected"] == [] and strict["features"] == [] and strict["candidates"]
    assert strict["detector"] is None and strict["set_test_auroc"] is None


def test_selecting_on_a_split_inflates_it_and_the_test_split_shows_it(gpt2, sae):
    """No signal at all (random texts, random labels): latents that pass the filter on a small select split
    look good only there; the large untouched test split puts them back near 0.5."""
    rng = random.Random(0)
    words = sorted({w.strip(".,").lower() for s in CALIBRATION_TEXTS for w in s.split()})
    texts = list(dict.fromkeys(" ".join(rng.choices(words, k=8)) for _ in range(1000)))
    rank, select, test = texts[:300], texts[300:360], texts[360:760]
    sets = DiscoverySets(rank[:150], rank[150:], select[:30], select[30:], test[:200], test[200:])
    obj = discover(gpt2, sae, sets, method="auroc", k=5, min_auroc=0.6)
    sel_auc = [f["select_auroc"] for f in obj["features"]]
    test_auc = [f["test_auroc"] for f in obj["features"]]
    assert len(sel_auc) >= 3 and min(sel_auc) >= 0.6  # chosen on noise, so they pass by construction
    assert np.mean(test_auc) < 0.56 and np.mean(test_auc) < np.mean(sel_auc) - 0.07  # the test split is not fooled
    assert obj["set_test_auroc"] < 0.6


def test_discover_errors(gpt2, sae):
    tox, cln = pairs()
    unpaired = DiscoverySets.from_texts(tox, cln)
    with pytest.raises(SaedetoxError, match="pairs"):
        discover(gpt2, sae, unpaired, method="paired")
    with pytest.raises(SaedetoxError, match="Unknown"):
        discover(gpt2, sae, unpaired, method="vibes")
    empty = DiscoverySets(TOXIC, CLEAN, TOXIC[:1], CLEAN[:1], [], CLEAN[2:])
    with pytest.raises(SaedetoxError, match="test split has no toxic"):
        discover(gpt2, sae, empty)
    for bad in (0, "x", []):
        with pytest.raises(SaedetoxError, match="k"):
            discover(gpt2, sae, unpaired, k=bad)


def test_topk_sae_discovery(tmp_path, gpt2, paired):
    d = write_sae(tmp_path / "s", gpt2.d_model, arch="topk", k=4)
    sae = load_sae(str(d), gpt2)
    sets = paired[0]
    obj = discover(gpt2, sae, sets, method="meandiff", k=2, min_auroc=0.55)
    assert 1 <= len(obj["selected"]) <= 2
    t_pos, t_neg = maxima(gpt2, sae, sets.test_toxic), maxima(gpt2, sae, sets.test_clean)
    y = np.r_[np.ones(len(t_pos)), np.zeros(len(t_neg))]
    for f in obj["features"]:
        i = f["index"]
        assert f["test_auroc"] == pytest.approx(roc_auc_score(y, np.r_[t_pos[:, i], t_neg[:, i]]), abs=1e-9)


def test_k_chosen_on_the_select_split_and_blind_to_the_test_split(gpt2, sae, paired):
    sets, rank_x, _ = paired
    obj = discover(gpt2, sae, sets, method="auroc", k=[1, 2, 4], min_auroc=0.6, gate=UNGATED)
    c = obj["k_choice"]
    assert c["grid"] == [1, 2, 4] and obj["k"] == c["chosen"] and len(obj["selected"]) <= c["chosen"]
    # independently: the full k = 4 selection, a detector per prefix refitted on rank, scored on select
    full = discover(gpt2, sae, sets, method="auroc", k=4, min_auroc=0.6, gate=UNGATED)["selected"]
    assert obj["selected"] == full[: c["chosen"]]
    sel_x = np.r_[maxima(gpt2, sae, sets.select_toxic), maxima(gpt2, sae, sets.select_clean)]
    r_y = np.r_[np.ones(len(sets.toxic)), np.zeros(len(sets.clean))]
    s_y = np.r_[np.ones(len(sets.select_toxic)), np.zeros(len(sets.select_clean))]
    expect = {}
    for k in (1, 2, 4):
        cols = full[:k]
        scale = rank_x[:, cols].std(0) + 1e-6
        clf = LogisticRegression(max_iter=2000).fit(rank_x[:, cols] / scale, r_y)
        expect[k] = roc_auc_score(s_y, clf.decision_function(sel_x[:, cols] / scale))
        assert c["select_auroc"][str(k)] == pytest.approx(expect[k], abs=2e-3)
    assert c["chosen"] == min(k for k in expect if expect[k] >= max(expect.values()) - 1e-9)
    # another test split (its toxic and clean sides swapped): the same choice, another test AUROC
    other = dataclasses.replace(sets, test_toxic=sets.test_clean[::-1], test_clean=sets.test_toxic[::-1])
    again = discover(gpt2, sae, other, method="auroc", k=[1, 2, 4], min_auroc=0.6, gate=UNGATED)
    assert again["k_choice"] == c and again["selected"] == obj["selected"]
    assert again["set_test_auroc"] != obj["set_test_auroc"]


def test_one_default_k_everywhere():
    """The CLI, the API and the sweep config agree on k (20: the demo's better setting)."""
    assert DEFAULT_K == 20
    assert inspect.signature(discover).parameters["k"].default == DEFAULT_K
    assert DiscoveryCfg().k == DEFAULT_K
    assert inspect.signature(discover_cmd).parameters["k"].default == str(DEFAULT_K)


def test_discover_reports_progress_over_every_text(gpt2, sae, paired, monkeypatch):
    from saedetox.progress import on_progress

    monkeypatch.delenv("SAEDETOX_QUIET", raising=False)
    steps = []
    on_progress(lambda desc, done, total: steps.append((desc, done, total)))
    try:
        discover(gpt2, sae, paired[0], method="auroc", k=3, min_auroc=0.6)
    finally:
        on_progress(None)
    s = paired[0]
    n = sum(map(len, (s.toxic, s.clean, s.select_toxic, s.select_clean, s.test_toxic, s.test_clean)))
    assert steps[0] == ("discover [auroc]: encoding texts", 0, n) and steps[-1][1:] == (n, n)
    assert [d.split(": ")[1] for d, _, _ in steps[1:]] == ["rank texts"] * 2 + ["select texts"] * 2 + ["test texts"] * 2
