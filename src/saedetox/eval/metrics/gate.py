"""How well a conditional gate selects: its AUROC for a toxic continuation, and how often it opens on clean text.

The gate of a features.json (its ``selected`` latents and ``thresholds``) opens on a text when
some latent exceeds its threshold at some position. Measured on each prompt + continuation of a
run (the unsteered run: "does the gate open where the model would have written something
toxic?") and on held-out clean windows of the same length in words
(:func:`saedetox.data.windows.clean_windows`, part ``test``). The AUROC scores each text by the
gate's margin max_f (a_f − τ_f) / s_f (s_f: the latent's standard deviation on the clean
windows; > 0 exactly where the gate opens), so it ranks texts rather than only splitting them;
``auroc_open`` is the AUROC of the open/shut decision itself, (TPR + TNR) / 2.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from saedetox.data.location import resolve_data_dir
from saedetox.data.windows import clean_windows
from saedetox.discover.features import Features
from saedetox.discover.gate import auroc, gate_margin, opens, window_maxima
from saedetox.discover.output_effect import token_acts
from saedetox.errors import SaedetoxError
from saedetox.model.load import LoadedModel
from saedetox.sae.load import load_sae


def gate_summary(margin: np.ndarray, is_open: np.ndarray, toxic: np.ndarray, clean_open: np.ndarray) -> dict[str, Any]:
    """The numbers metrics.json's ``gate`` holds, from per-text margins and decisions (module docstring)."""
    toxic = np.asarray(toxic, dtype=bool)

    def share(x: np.ndarray) -> float | None:
        return float(x.mean()) if len(x) else None

    return {
        "n_texts": len(toxic),
        "open_rate": share(is_open),
        "auroc_toxic": auroc(margin, toxic),
        "auroc_open": auroc(is_open.astype(float), toxic),
        "toxic_rate_open": share(toxic[is_open]),
        "toxic_rate_shut": share(toxic[~is_open]),
        "clean_false_open": share(clean_open),
        "clean_windows": len(clean_open),
    }


def gate_quality(
    lm: LoadedModel,
    features: str | Features,
    texts: Sequence[str],
    toxic: Sequence[bool],
    data_dir: str | None = None,
    window_words: int | None = None,
) -> dict[str, Any]:
    """The gate's selectivity on ``texts`` (prompt + continuation) labelled ``toxic``, and on clean windows.

    ``window_words`` defaults to the texts' median length in words.
    """
    feats = features if isinstance(features, Features) else Features.load(features)
    th = feats.thresholds
    if not feats.latents or th is None or len(th) != len(feats.latents):
        raise SaedetoxError(f"{features} has no gate: it needs 'selected' latents and as many 'thresholds'.")
    if len(texts) != len(toxic):
        raise SaedetoxError("Each text needs a toxicity label.")
    sae = feats.sae if feats.sae is not None else load_sae(str(feats.sae_name), lm)
    words = window_words or max(1, int(np.median([len(t.split()) for t in texts] or [1])))
    windows = clean_windows(resolve_data_dir(data_dir), words, "test")
    hook = feats.hook or sae.hook_name
    mx = window_maxima(token_acts(lm, sae, list(texts), feats.latents, hook)[0], len(th))
    clean_mx = window_maxima(token_acts(lm, sae, windows, feats.latents, hook)[0], len(th))
    scale = clean_mx.std(0) + 1e-6 if len(clean_mx) else None
    out = gate_summary(gate_margin(mx, th, scale), opens(mx, th), np.asarray(toxic), opens(clean_mx, th))
    return {**out, "window_words": words, "latents": len(th)}
