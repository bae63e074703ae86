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

Three disjoint splits (:mod:`saedetox.discover.sets`): the scores are computed on ``rank``; of the
top candidates, the first ``k`` whose AUROC on ``select`` is at least ``min_auroc`` are selected;
with a grid of ``k`` values the select split also chooses ``k`` (:mod:`saedetox.discover.kgrid`,
recorded as ``k_choice``); every AUROC reported is measured on ``test``, which chose nothing.
``features.json`` records the model, SAE, hook, method, data and split sizes (``splits``); per
selected latent its scores,
``select_auroc``, ``test_auroc``, top-activating tokens (test split) with short contexts and the
Neuronpedia URL when the SAE's metadata names one; for the set, the logistic ``detector``
(:mod:`saedetox.discover.detector`, fitted on rank), its ``set_test_auroc`` and the plain sum's
``set_test_auroc_sum``. The gate settings (:class:`~saedetox.discover.options.GateOptions`,
:mod:`saedetox.discover.choose`) add the specificity and output-effect filters (select data), the
joint gate calibration on clean windows, and the per-position next-token detector.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from saedetox.discover import DEFAULT_K, DEFAULT_MIN_AUROC
from saedetox.discover.attribution import gradients, latent_scores, toxic_token_ids
from saedetox.discover.choose import Windows, choose, reference_windows, set_gate
from saedetox.discover.detector import detector_logit, fit_detector
from saedetox.discover.features import Features
from saedetox.discover.kgrid import KChoice, choose_k, k_grid
from saedetox.discover.options import GateOptions
from saedetox.discover.output_effect import fit_token_detector, token_acts
from saedetox.discover.rank_stats import METHODS, TextStats, auroc_per_latent, rank_scores, text_stats
from saedetox.discover.sets import DiscoverySets, check_sets, reference_sets
from saedetox.errors import SaedetoxError
from saedetox.model.chat import chat_texts, check_chat
from saedetox.model.load import LoadedModel, as_loaded_model
from saedetox.progress import progress_bar
from saedetox.sae.load import load_sae
from saedetox.sae.loaded import LoadedSAE

ATTRIBUTION_TEXTS = 1000  # texts per side for the attribution gradients
ATTRIBUTION_MIN_AUROC = 0.55  # attribution ranks only latents that fire more on toxic text


def _context(lm: LoadedModel, ids: list[int], pos: int, width: int = 6) -> tuple[str, str]:
    tok = lm.tokenizer
    left = tok.decode(ids[max(1, pos - width) : pos])
    return tok.decode(
        [ids[pos]]
    ), f"{left}[[{tok.decode([ids[pos]])}]]{tok.decode(ids[pos + 1 : pos + 1 + width // 2])}"


def _labels(tox: TextStats, cln: TextStats, cols: list[int]) -> tuple[np.ndarray, np.ndarray]:
    x = np.r_[tox.max_act[:, cols], cln.max_act[:, cols]]
    return x, np.r_[np.ones(len(tox.max_act)), np.zeros(len(cln.max_act))]


def _detector(
    lm: LoadedModel,
    sae: LoadedSAE,
    hook: str,
    data: DiscoverySets,
    selected: list[int],
    tox: TextStats,
    cln: TextStats,
    targets: list[int],
    gate: GateOptions,
    batch_size: int,
) -> dict | None:
    """The set detector, fitted on the rank split: per-text maxima (``text``) or per position (``next-token``)."""
    if not selected:
        return None
    if gate.detector_target == "text":
        return fit_detector(selected, *_labels(tox, cln, selected))
    texts = list(data.toxic[:ATTRIBUTION_TEXTS]) + list(data.clean[:ATTRIBUTION_TEXTS])
    acts, ids = token_acts(lm, sae, texts, selected, hook, batch_size)
    return fit_token_detector(selected, acts, ids, targets)


def _choose_k(
    grid: Sequence[int], selected: list[int], tox: TextStats, cln: TextStats, s_tox: TextStats, s_cln: TextStats
) -> KChoice:
    """The grid's best k: detectors fitted on the rank split, scored on the select split."""
    return choose_k(grid, *_labels(tox, cln, selected), *_labels(s_tox, s_cln, selected))


def discover(
    lm: LoadedModel,
    sae: LoadedSAE | str,
    data: DiscoverySets | None = None,
    *,
    method: str = "attribution",
    k: int | Sequence[int] | str = DEFAULT_K,
    min_auroc: float = DEFAULT_MIN_AUROC,
    hook: str | None = None,
    max_pairs: int | None = None,
    batch_size: int = 32,
    gate_quantile: float = 0.95,
    chat: bool = False,
    gate: GateOptions | None = None,
    windows: Windows | None = None,
    data_dir: str | None = None,
) -> Features:
    """Rank latents on ``data``'s rank split, select up to ``k`` on its select split, report on its test split.

    ``k``: a number, or a grid (a list, ``"auto"``) from which the select split chooses
    (:mod:`saedetox.discover.kgrid`).

    ``sae`` is a loaded SAE or a name (loaded for ``lm``). ``data`` (:func:`discovery_sets`)
    defaults to the reference world's ParaDetox split; ``max_pairs`` caps it (rank ``n``, select
    and test ``n // 2`` texts per side). ``chat`` wraps every text in the tokenizer's chat template
    (:mod:`saedetox.model.chat`), as a chat model is prompted. ``gate`` (:class:`GateOptions`)
    adds the specificity and output-effect filters, the joint gate calibration and the token
    detector; ``windows`` are the clean windows they read (default: the reference corpus' in
    ``data_dir``, read only when a setting needs them). Returns :class:`Features`: the features.json object.
    """
    if method not in METHODS:
        raise SaedetoxError(f"Unknown discovery method '{method}': use one of {', '.join(METHODS)}.")
    grid = k_grid(k)
    k = max(grid)
    lm = as_loaded_model(lm)
    if isinstance(sae, str):
        sae = load_sae(sae, lm)
    data = (data if data is not None else reference_sets()).capped(max_pairs)
    check_sets(data)
    if chat:
        check_chat(lm.tokenizer, lm.name)
        data = data.mapped(lambda texts: chat_texts(lm.tokenizer, texts, True))
    if method == "paired" and not data.paired:
        raise SaedetoxError("Method 'paired' needs toxic/neutral pairs (ParaDetox style).")
    t0 = time.time()
    gate = gate if gate is not None else GateOptions()
    if windows is None and gate.needs_windows:
        try:
            windows = reference_windows(gate.window_words, data_dir)
        except (SaedetoxError, OSError) as e:
            why = f"{e.filename} is missing" if isinstance(e, OSError) and e.filename else str(e).rstrip(".")
            raise SaedetoxError(
                f"The joint gate (gate_rate {gate.gate_rate:g}) and the clean-open filter read clean text windows "
                f"from the reference corpus, which cannot be read ({why}). Point data_dir at it, or set gate_rate "
                "to 0 for per-latent thresholds."
            ) from None
    hook = hook or sae.hook_name
    n_attr = min(len(data.toxic), ATTRIBUTION_TEXTS) + min(len(data.clean), ATTRIBUTION_TEXTS)
    sides = (data.toxic, data.clean, data.select_toxic, data.select_clean, data.test_toxic, data.test_clean)
    total = sum(map(len, sides)) + (n_attr if method == "attribution" else 0)
    with progress_bar(f"discover [{method}]: encoding texts", total=total) as bar:

        def stats(texts, split: str, **kw) -> TextStats:
            out = text_stats(lm, sae, texts, hook, batch_size, **kw)
            bar.advance(len(texts), description=f"discover [{method}]: {split} texts")
            return out

        tox, cln = stats(data.toxic, "rank"), stats(data.clean, "rank")
        if method == "attribution":
            grads = gradients(lm, hook, list(data.toxic[:ATTRIBUTION_TEXTS]), list(data.clean[:ATTRIBUTION_TEXTS]))
            bar.advance(n_attr, description=f"discover [{method}]: attribution gradients")
            attr = latent_scores(sae.unit_directions(torch.arange(sae.d_sae)).cpu(), grads).numpy()
            auc = auroc_per_latent(tox.max_act, cln.max_act)
            scores = np.where(auc >= ATTRIBUTION_MIN_AUROC, attr, -np.inf)
        else:
            scores = rank_scores(method, tox, cln, data.paired)
        # rank by score; ignore latents that never fire on toxic text
        alive = (tox.max_act.max(0) > 0) & np.isfinite(scores)
        order = [int(i) for i in np.argsort(-np.where(alive, scores, -np.inf)) if alive[i]]
        pool = order[: max(4 * k, 50)]
        s_tox, s_cln = stats(data.select_toxic, "select"), stats(data.select_clean, "select")
        sel_auc = dict(
            zip(pool, map(float, auroc_per_latent(s_tox.max_act[:, pool], s_cln.max_act[:, pool])), strict=True)
        )
        # gate thresholds for conditional/token steering: the latent's per-text maximum on clean (rank) text at
        # ``gate_quantile``, so a gate opens on few clean texts but on toxic ones
        own = {idx: float(np.quantile(cln.max_act[:, idx], gate_quantile)) for idx in pool}
        targets = (
            grads.toxic_tokens
            if method == "attribution"
            else toxic_token_ids(lm, data.toxic[:ATTRIBUTION_TEXTS], data.clean[:ATTRIBUTION_TEXTS])
        )
        choice = choose(lm, sae, hook, pool, sel_auc, own, k, min_auroc, gate, data.select_toxic, targets, windows)
        k_choice = None
        if len(grid) > 1 and choice.selected:
            k_choice = _choose_k(grid, choice.selected, tox, cln, s_tox, s_cln)
            choice.selected = choice.selected[: k_choice.k]
        selected = choice.selected
        t_tox, t_cln = stats(data.test_toxic, "test", track=selected), stats(data.test_clean, "test")
    test_auc = auroc_per_latent(t_tox.max_act[:, selected], t_cln.max_act[:, selected]) if selected else []
    gates = [own[idx] for idx in selected]
    all_scores = {
        m: rank_scores(m, tox, cln, data.paired)
        for m in METHODS
        if m != "attribution" and (m != "paired" or data.paired)
    }
    if method == "attribution":
        all_scores["attribution"] = scores
    feats = []
    for j, idx in enumerate(selected):
        top = []
        for act, text_i, pos in t_tox.top[j][:5]:
            token, ctx = _context(lm, t_tox.token_ids[text_i], pos)
            top.append({"token": token, "context": ctx, "act": round(act, 4)})
        feats.append(
            {
                "index": idx,
                "scores": {m: float(s[idx]) for m, s in all_scores.items()},
                "select_auroc": sel_auc[idx],
                "test_auroc": float(test_auc[j]),
                "top_tokens": top,
                "neuronpedia": sae.neuronpedia_url(idx),
                "output_effect": choice.output_effect.get(idx),
                **({"clean_open": choice.clean_open[idx]} if idx in choice.clean_open else {}),
            }
        )
    detector = _detector(lm, sae, hook, data, selected, tox, cln, targets, gate, batch_size)
    gates, detector, gate_record = set_gate(lm, sae, hook, choice, gates, detector, gate, windows)
    set_auc = set_sum = None
    if selected:
        test_x, test_y = _labels(t_tox, t_cln, selected)
        set_sum = float(roc_auc_score(test_y, test_x.sum(1)))
        set_auc = set_sum
        if detector and detector.get("pooling", "max") == "max":
            set_auc = float(roc_auc_score(test_y, detector_logit(detector, test_x)))
    obj = {
        "model": lm.name,
        "sae": sae.source,
        "hook": hook,
        "d_sae": sae.d_sae,
        "method": method,
        "k": k if k_choice is None else k_choice.k,
        **({"k_choice": k_choice.record()} if k_choice is not None else {}),
        "min_auroc": min_auroc,
        "data": data.description,
        "splits": data.sizes(),
        "selected": selected,
        "thresholds": gates,
        "gate_quantile": gate_quantile,
        **({"gate": gate_record} if gate_record is not None else {}),
        "gate_options": asdict(gate),
        "set_test_auroc": set_auc,
        "set_test_auroc_sum": set_sum,
        "detector": detector,
        "candidates": [{"index": i, "score": float(scores[i]), "select_auroc": sel_auc[i]} for i in pool],
        "features": feats,
        "wall_seconds": round(time.time() - t0, 2),
        **({"chat": True} if chat else {}),
    }
    return Features(obj, sae=sae)
