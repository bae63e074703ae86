"""``saedetox discover``: rank SAE latents by how toxicity-specific they are, and select some.

Per text we record, for every latent, its maximum activation, its mean activation and the
share of tokens where it fires (BOS and padding excluded). Ranking methods:

| method | score of latent f |
| --- | --- |
| ``paper-max`` | max activation over all toxic tokens (the paper's first criterion) |
| ``paper-freq`` | firing frequency over toxic tokens (the paper's second criterion) |
| ``meandiff`` | mean activation on toxic tokens − on clean tokens |
| ``freqratio`` | (firing freq. toxic + ε) / (firing freq. clean + ε), ε = 1e-4 |
| ``auroc`` | AUROC of the per-text max activation, toxic vs clean |
| ``paired`` | paired t-statistic of max activation, toxic − neutral, over ParaDetox pairs |
| ``attribution`` | first-order drop in toxic-token log-prob when steering against û_f, minus the clean-text |
| | log-prob drop (:mod:`saedetox.discover.attribution`); only latents with AUROC ≥ 0.55 are ranked |

Selection takes the top ``k`` by the score whose AUROC on a held-out split (never used for
ranking) is at least ``min_auroc``. ``features.json`` records the model, SAE, hook, method,
data, and per selected latent: its scores, held-out AUROC, top-activating tokens with short
contexts, and the Neuronpedia URL when the SAE's metadata names one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from saedetox.discover.attribution import gradients, latent_scores
from saedetox.discover.sets import DiscoverySets
from saedetox.discover.stats import METHODS, auroc_per_latent, rank_scores, text_stats
from saedetox.errors import SaedetoxError
from saedetox.model.load import LoadedModel
from saedetox.sae.loaded import LoadedSAE

ATTRIBUTION_TEXTS = 1000  # texts per side for the attribution gradients
ATTRIBUTION_MIN_AUROC = 0.55  # attribution ranks only latents that fire more on toxic text


def _context(lm: LoadedModel, ids: list[int], pos: int, width: int = 6) -> tuple[str, str]:
    tok = lm.tokenizer
    left = tok.decode(ids[max(1, pos - width) : pos])
    return tok.decode(
        [ids[pos]]
    ), f"{left}[[{tok.decode([ids[pos]])}]]{tok.decode(ids[pos + 1 : pos + 1 + width // 2])}"


def discover(
    lm: LoadedModel,
    sae: LoadedSAE,
    toxic: Sequence[str],
    clean: Sequence[str],
    heldout_toxic: Sequence[str],
    heldout_clean: Sequence[str],
    method: str = "attribution",
    k: int = 10,
    min_auroc: float = 0.6,
    paired: bool = False,
    hook: str | None = None,
    data: dict[str, Any] | None = None,
    batch_size: int = 32,
    gate_quantile: float = 0.95,
) -> dict[str, Any]:
    """Rank latents and select up to ``k``; return the features.json object."""
    if method not in METHODS:
        raise SaedetoxError(f"Unknown discovery method '{method}': use one of {', '.join(METHODS)}.")
    for name, texts in (
        ("toxic", toxic),
        ("clean", clean),
        ("held-out toxic", heldout_toxic),
        ("held-out clean", heldout_clean),
    ):
        if not texts:
            raise SaedetoxError(f"Discovery needs {name} texts; the {name} set is empty.")
    if k < 1:
        raise SaedetoxError("k must be at least 1.")
    t0 = time.time()
    hook = hook or sae.hook_name
    tox = text_stats(lm, sae, toxic, hook, batch_size)
    cln = text_stats(lm, sae, clean, hook, batch_size)
    if method == "attribution":
        grads = gradients(lm, hook, list(toxic[:ATTRIBUTION_TEXTS]), list(clean[:ATTRIBUTION_TEXTS]))
        attr = latent_scores(sae.unit_directions(torch.arange(sae.d_sae)).cpu(), grads).numpy()
        auc = auroc_per_latent(tox.max_act, cln.max_act)
        scores = np.where(auc >= ATTRIBUTION_MIN_AUROC, attr, -np.inf)
    else:
        scores = rank_scores(method, tox, cln, paired)
    # rank by score; ignore latents that never fire on toxic text
    alive = (tox.max_act.max(0) > 0) & np.isfinite(scores)
    order = [int(i) for i in np.argsort(-np.where(alive, scores, -np.inf)) if alive[i]]
    pool = order[: max(4 * k, 50)]
    h_tox = text_stats(lm, sae, heldout_toxic, hook, batch_size, track=pool)
    h_cln = text_stats(lm, sae, heldout_clean, hook, batch_size)
    held = auroc_per_latent(h_tox.max_act[:, pool], h_cln.max_act[:, pool])
    held_by = {idx: float(a) for idx, a in zip(pool, held, strict=True)}
    selected = [idx for idx in pool if held_by[idx] >= min_auroc][:k]
    # gate thresholds for conditional/token steering: the latent's per-text maximum on clean text at
    # ``gate_quantile``, so a gate opens on few clean texts but on toxic ones
    gates = {idx: float(np.quantile(cln.max_act[:, idx], gate_quantile)) for idx in selected}
    all_scores = {
        m: rank_scores(m, tox, cln, paired) for m in METHODS if m != "attribution" and (m != "paired" or paired)
    }
    if method == "attribution":
        all_scores["attribution"] = scores
    feats = []
    for idx in selected:
        j = pool.index(idx)
        top = []
        for act, text_i, pos in h_tox.top[j][:5]:
            token, ctx = _context(lm, h_tox.token_ids[text_i], pos)
            top.append({"token": token, "context": ctx, "act": round(act, 4)})
        feats.append(
            {
                "index": idx,
                "scores": {m: float(s[idx]) for m, s in all_scores.items()},
                "heldout_auroc": held_by[idx],
                "top_tokens": top,
                "neuronpedia": sae.neuronpedia_url(idx),
            }
        )
    set_auroc = set_auroc_sum = None
    if selected:
        cols = [pool.index(i) for i in selected]
        held_x = np.r_[h_tox.max_act[:, pool][:, cols], h_cln.max_act[:, pool][:, cols]]
        held_y = np.r_[np.ones(len(heldout_toxic)), np.zeros(len(heldout_clean))]
        set_auroc, set_auroc_sum = set_detector_auroc(
            np.r_[tox.max_act[:, selected], cln.max_act[:, selected]],
            np.r_[np.ones(len(toxic)), np.zeros(len(clean))],
            held_x,
            held_y,
        )
    return {
        "model": lm.name,
        "sae": sae.source,
        "hook": hook,
        "d_sae": sae.d_sae,
        "method": method,
        "k": k,
        "min_auroc": min_auroc,
        "data": data or {},
        "n_texts": {
            "toxic": len(toxic),
            "clean": len(clean),
            "heldout_toxic": len(heldout_toxic),
            "heldout_clean": len(heldout_clean),
        },
        "selected": selected,
        "thresholds": [gates[i] for i in selected],
        "gate_quantile": gate_quantile,
        "set_heldout_auroc": set_auroc,
        "set_heldout_auroc_sum": set_auroc_sum,
        "candidates": [{"index": i, "score": float(scores[i]), "heldout_auroc": held_by[i]} for i in pool],
        "features": feats,
        "wall_seconds": round(time.time() - t0, 2),
    }


def discover_sets(
    lm: LoadedModel, sae: LoadedSAE, sets: DiscoverySets, *, method: str, k: int, min_auroc: float, hook: str | None
) -> dict[str, Any]:
    """:func:`discover` on a :class:`DiscoverySets` (its texts, pairing and description)."""
    return discover(
        lm,
        sae,
        sets.toxic,
        sets.clean,
        sets.heldout_toxic,
        sets.heldout_clean,
        method=method,
        k=k,
        min_auroc=min_auroc,
        paired=sets.paired,
        hook=hook,
        data=sets.description,
    )


def set_detector_auroc(
    train_x: np.ndarray, train_y: np.ndarray, held_x: np.ndarray, held_y: np.ndarray
) -> tuple[float, float]:
    """Held-out AUROC of the selected latents taken together, as a toxicity detector.

    Features are the per-text maximum activation of each selected latent. The first number is a
    logistic regression fitted on the ranking split only (so the held-out split stays unseen); the
    second needs no fitting: the plain sum of the maxima.
    """
    summed = float(roc_auc_score(held_y, held_x.sum(1)))
    if len(np.unique(train_y)) < 2:
        return summed, summed
    scale = train_x.std(0) + 1e-6
    clf = LogisticRegression(max_iter=2000).fit(train_x / scale, train_y)
    return float(roc_auc_score(held_y, clf.decision_function(held_x / scale))), summed
