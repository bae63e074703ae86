"""Discovery: ranking statistics against hand computation, selection on a held-out split."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from helpers import write_sae
from saedetox.discover.select import discover
from saedetox.discover.sets import discovery_sets
from saedetox.discover.stats import METHODS, auroc_per_latent, text_stats
from saedetox.errors import SaedetoxError
from saedetox.sae.load import load_sae

TOXIC = ["you stupid idiot, shut up", "what a damn fool you are", "shut up you fucking moron", "go to hell, idiot"]
CLEAN = ["you are a kind person, thanks", "what a lovely day it is", "please be quiet, my friend", "go to the park"]


def test_auroc_per_latent_matches_sklearn():
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(1, 1, (30, 5)), rng.normal(0, 1, (40, 5))
    pos[:, 4] = 0
    neg[:, 4] = 0  # all ties -> 0.5
    got = auroc_per_latent(pos, neg)
    want = [roc_auc_score(np.r_[np.ones(30), np.zeros(40)], np.r_[pos[:, j], neg[:, j]]) for j in range(5)]
    assert np.allclose(got, want)


def test_text_stats_against_direct_encoding(gpt2, sae_dir):
    sae = load_sae(str(sae_dir), model_uses_layernorm=True)
    st = text_stats(gpt2, sae, TOXIC, track=[3])
    from saedetox.model.capture import capture

    acts = capture(gpt2, TOXIC, sae.hook_name)
    z = [sae.encode(a)[1:] for a in acts]  # BOS excluded
    assert np.allclose(st.max_act, np.stack([x.amax(0).numpy() for x in z]), atol=1e-5)
    assert np.allclose(st.sum_act, torch.cat(z).sum(0).double().numpy(), atol=1e-3)
    assert st.n_tokens == sum(x.shape[0] for x in z)
    assert np.allclose(st.fire_count, (torch.cat(z) > 0).sum(0).numpy())
    if st.top[0]:
        act, text_i, pos = st.top[0][0]
        assert act == pytest.approx(float(z[text_i][pos - 1, 3]), abs=1e-5)


@pytest.mark.parametrize("method", METHODS)
def test_discover_selects_with_heldout_check(gpt2, sae_dir, method):
    sae = load_sae(str(sae_dir), model_uses_layernorm=True)
    obj = discover(gpt2, sae, TOXIC, CLEAN, TOXIC[:2], CLEAN[:2], method=method, k=3, min_auroc=0.0, paired=True)
    assert len(obj["selected"]) == 3 and obj["method"] == method
    for f in obj["features"]:
        assert 0 <= f["heldout_auroc"] <= 1 and "auroc" in f["scores"]
    strict = discover(gpt2, sae, TOXIC, CLEAN, TOXIC[:2], CLEAN[:2], method=method, k=3, min_auroc=1.01, paired=True)
    assert strict["selected"] == []


def test_discover_errors(gpt2, sae_dir):
    sae = load_sae(str(sae_dir), model_uses_layernorm=True)
    with pytest.raises(SaedetoxError, match="pairs"):
        discover(gpt2, sae, TOXIC, CLEAN, TOXIC, CLEAN, method="paired", paired=False)
    with pytest.raises(SaedetoxError, match="Unknown"):
        discover(gpt2, sae, TOXIC, CLEAN, TOXIC, CLEAN, method="vibes")
    with pytest.raises(SaedetoxError, match="empty"):
        discover(gpt2, sae, [], CLEAN, TOXIC, CLEAN)


def test_discovery_sets_from_files(tmp_path):
    (tmp_path / "t.txt").write_text("\n".join(TOXIC * 10))
    (tmp_path / "c.txt").write_text("\n".join(CLEAN * 10))
    sets = discovery_sets(toxic=str(tmp_path / "t.txt"), clean=str(tmp_path / "c.txt"))
    assert sets.toxic and sets.heldout_toxic and not sets.paired
    assert not set(sets.toxic) & set(sets.heldout_toxic)
    with pytest.raises(SaedetoxError):
        discovery_sets(toxic=str(tmp_path / "t.txt"))


def test_reference_discovery_split_is_disjoint():
    sets = discovery_sets()
    assert sets.paired and len(sets.toxic) > 1000 and len(sets.heldout_toxic) > 500
    assert not set(sets.toxic) & set(sets.heldout_toxic)


def test_topk_sae_discovery(tmp_path, gpt2):
    d = write_sae(tmp_path / "s", gpt2.d_model, arch="topk", k=4)
    sae = load_sae(str(d), model_uses_layernorm=True)
    obj = discover(gpt2, sae, TOXIC, CLEAN, TOXIC, CLEAN, method="meandiff", k=2, min_auroc=0.0)
    assert len(obj["selected"]) <= 2


def test_set_detector_auroc_is_fitted_on_train_and_scored_on_heldout():
    import numpy as np

    from saedetox.discover.select import set_detector_auroc

    rng = np.random.default_rng(0)

    # latent 0 separates, latent 1 is noise with a large scale that swamps the plain sum
    def draw(n, y):
        return np.c_[rng.normal(y * 1.0, 0.5, n), rng.normal(0, 20, n)]

    tx = np.r_[draw(400, 1), draw(400, 0)]
    ty = np.r_[np.ones(400), np.zeros(400)]
    hx = np.r_[draw(300, 1), draw(300, 0)]
    hy = np.r_[np.ones(300), np.zeros(300)]
    fitted, summed = set_detector_auroc(tx, ty, hx, hy)
    # hand computation of the sum's AUROC: share of (pos, neg) pairs ranked correctly
    s = hx.sum(1)
    pos, neg = s[hy == 1], s[hy == 0]
    by_hand = (pos[:, None] > neg[None]).mean() + 0.5 * (pos[:, None] == neg[None]).mean()
    assert abs(summed - by_hand) < 1e-9
    assert fitted > 0.9 > summed
