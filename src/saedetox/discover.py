"""``saedetox discover``: rank SAE latents by how toxicity-specific they are.

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
| | log-prob drop (:mod:`saedetox.attribution`); only latents with AUROC ≥ 0.55 are ranked |

Selection takes the top ``k`` by the score whose AUROC on a held-out split (never used for
ranking) is at least ``min_auroc``. ``features.json`` records the model, SAE, hook, method,
data, and per selected latent: its scores, held-out AUROC, top-activating tokens with short
contexts, and the Neuronpedia URL when the SAE's metadata names one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from saedetox.errors import SaedetoxError
from saedetox.io import atomic_write_json
from saedetox.model.capture import iter_activations
from saedetox.model.load import LoadedModel
from saedetox.sae.loaded import LoadedSAE

METHODS: tuple[str, ...] = ("auroc", "paired", "meandiff", "freqratio", "paper-max", "paper-freq", "attribution")
ATTRIBUTION_TEXTS = 1000  # texts per side for the attribution gradients
ATTRIBUTION_MIN_AUROC = 0.55  # attribution ranks only latents that fire more on toxic text


@dataclass
class TextStats:
    """Per-text latent statistics for one set of texts."""

    max_act: np.ndarray  # [n_texts, d_sae]
    sum_act: np.ndarray  # [d_sae] over all tokens
    fire_count: np.ndarray  # [d_sae] over all tokens
    n_tokens: int
    top: list[list[tuple[float, int, int]]] = field(default_factory=list)  # per latent: (act, text, position)
    token_ids: list[list[int]] = field(default_factory=list)


@torch.no_grad()
def text_stats(
    lm: LoadedModel,
    sae: LoadedSAE,
    texts: Sequence[str],
    hook: str | None = None,
    batch_size: int = 32,
    track: Sequence[int] | None = None,
    max_length: int = 128,
) -> TextStats:
    """Encode ``texts`` at the SAE's hook; collect per-text maxima and token-level sums."""
    hook = hook or sae.hook_name
    d_sae = sae.d_sae
    max_act = np.zeros((len(texts), d_sae), dtype=np.float32)
    sum_act = torch.zeros(d_sae, dtype=torch.float64)
    fire = torch.zeros(d_sae, dtype=torch.float64)
    n_tok = 0
    track_idx = torch.tensor(list(track or []), dtype=torch.long)
    top: list[list[tuple[float, int, int]]] = [[] for _ in range(len(track_idx))]
    token_ids: list[list[int]] = []
    row = 0
    for acts, mask, ids in iter_activations(lm, texts, [hook], batch_size, sae.prepend_bos, "right", max_length):
        m = mask.bool().clone()
        if sae.prepend_bos:
            m[:, 0] = False
        z = sae.encode(acts[hook]).float()  # [B, T, d_sae]
        z = z * m.unsqueeze(-1)
        max_act[row : row + z.shape[0]] = z.amax(1).cpu().numpy()
        sum_act += z.sum((0, 1)).double().cpu()
        fire += (z > 0).sum((0, 1)).double().cpu()
        n_tok += int(m.sum())
        if len(track_idx):
            zt = z[..., track_idx.to(z.device)]  # [B, T, n_track]
            for j in range(zt.shape[-1]):
                vals, flat = torch.topk(zt[..., j].flatten(), min(8, zt[..., j].numel()))
                for v, f in zip(vals.tolist(), flat.tolist(), strict=True):
                    if v > 0:
                        top[j].append((v, row + f // zt.shape[1], f % zt.shape[1]))
        for i in range(ids.shape[0]):
            token_ids.append(ids[i, : int(mask[i].sum())].tolist())
        row += z.shape[0]
    for j in range(len(top)):
        top[j] = sorted(top[j], reverse=True)[:8]
    return TextStats(max_act, sum_act.numpy(), fire.numpy(), n_tok, top, token_ids)


def auroc_per_latent(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """AUROC of each column (higher = more positive), ties counted half, via ranks."""
    from scipy.stats import rankdata

    both = np.concatenate([pos, neg], 0)
    ranks = rankdata(both, axis=0)
    n_pos, n_neg = pos.shape[0], neg.shape[0]
    return (ranks[:n_pos].sum(0) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def rank_scores(method: str, tox: TextStats, clean: TextStats, paired: bool) -> np.ndarray:
    if method == "auroc":
        return auroc_per_latent(tox.max_act, clean.max_act)
    if method == "paired":
        if not paired:
            raise SaedetoxError("Method 'paired' needs ParaDetox-style pairs (--pairs).")
        diff = tox.max_act - clean.max_act
        sd = diff.std(0, ddof=1) + 1e-6
        return diff.mean(0) / sd * np.sqrt(diff.shape[0])
    if method == "meandiff":
        return tox.sum_act / max(tox.n_tokens, 1) - clean.sum_act / max(clean.n_tokens, 1)
    if method == "freqratio":
        return (tox.fire_count / max(tox.n_tokens, 1) + 1e-4) / (clean.fire_count / max(clean.n_tokens, 1) + 1e-4)
    if method == "paper-max":
        return tox.max_act.max(0)
    if method == "paper-freq":
        return tox.fire_count / max(tox.n_tokens, 1)
    if method == "attribution":
        raise SaedetoxError("Method 'attribution' needs the model: call discover().")
    raise SaedetoxError(f"Unknown discovery method '{method}': use one of {', '.join(METHODS)}.")


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
        from saedetox.attribution import gradients, latent_scores

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


def set_detector_auroc(
    train_x: np.ndarray, train_y: np.ndarray, held_x: np.ndarray, held_y: np.ndarray
) -> tuple[float, float]:
    """Held-out AUROC of the selected latents taken together, as a toxicity detector.

    Features are the per-text maximum activation of each selected latent. The first number is a
    logistic regression fitted on the ranking split only (so the held-out split stays unseen); the
    second needs no fitting: the plain sum of the maxima.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    summed = float(roc_auc_score(held_y, held_x.sum(1)))
    if len(np.unique(train_y)) < 2:
        return summed, summed
    scale = train_x.std(0) + 1e-6
    clf = LogisticRegression(max_iter=2000).fit(train_x / scale, train_y)
    return float(roc_auc_score(held_y, clf.decision_function(held_x / scale))), summed


def write_features(obj: dict[str, Any], path: str | Path) -> Path:
    atomic_write_json(path, obj)
    return Path(path)


@dataclass
class DiscoverySets:
    toxic: list[str]
    clean: list[str]
    heldout_toxic: list[str]
    heldout_clean: list[str]
    paired: bool
    description: dict[str, Any]


def _hash_split(items: list[Any], key, share: float = 0.2) -> tuple[list[Any], list[Any]]:
    from saedetox.data.roles import stable_unit

    train = [x for x in items if stable_unit(key(x), "discovery-user") >= share]
    held = [x for x in items if stable_unit(key(x), "discovery-user") < share]
    return train, held


def discovery_sets(
    pairs: str | None = None,
    toxic: str | None = None,
    clean: str | None = None,
    heldout_toxic: str | None = None,
    heldout_clean: str | None = None,
    field: str = "text",
    data_dir: str | None = None,
) -> DiscoverySets:
    """The texts discovery ranks on and validates on.

    Default: the reference world's ParaDetox split (roles ``discovery`` / ``discovery_heldout``).
    ``pairs``: a ParaDetox-style TSV, split 80/20 by a stable hash. ``toxic`` + ``clean``: two
    text files, split the same way unless held-out files are given.
    """
    from saedetox.data.readers import read_paradetox_pairs, read_texts
    from saedetox.data.roles import paradetox_by_role

    if pairs is None and toxic is None and clean is None:
        roles = paradetox_by_role(data_dir)
        tr, ho = roles["discovery"], roles["discovery_heldout"]
        desc = {
            "source": "paradetox/paradetox.tsv",
            "split": "roles discovery / discovery_heldout (saedetox.data.roles)",
        }
        return DiscoverySets(
            [p.toxic for p in tr], [p.neutral for p in tr], [p.toxic for p in ho], [p.neutral for p in ho], True, desc
        )
    if pairs is not None:
        if toxic or clean:
            raise SaedetoxError("Give either --pairs or --toxic/--clean, not both.")
        tr, ho = _hash_split(read_paradetox_pairs(pairs), lambda p: p.toxic)
        return DiscoverySets(
            [p.toxic for p in tr],
            [p.neutral for p in tr],
            [p.toxic for p in ho],
            [p.neutral for p in ho],
            True,
            {"source": pairs, "split": "80/20 by stable hash"},
        )
    if toxic is None or clean is None:
        raise SaedetoxError("Give both --toxic and --clean text files (or --pairs).")
    tox, cln = read_texts(toxic, field), read_texts(clean, field)
    if heldout_toxic or heldout_clean:
        if not (heldout_toxic and heldout_clean):
            raise SaedetoxError("Give both --heldout-toxic and --heldout-clean.")
        h_tox, h_cln = read_texts(heldout_toxic, field), read_texts(heldout_clean, field)
    else:
        tox, h_tox = _hash_split(tox, str)
        cln, h_cln = _hash_split(cln, str)
    desc = {"toxic": toxic, "clean": clean, "heldout_toxic": heldout_toxic, "heldout_clean": heldout_clean}
    return DiscoverySets(tox, cln, h_tox, h_cln, False, desc)
