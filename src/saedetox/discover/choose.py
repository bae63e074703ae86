"""Choosing latents that are specific to toxicity, and setting the gate and detector to a clean false-open rate.

Given discovery's candidate pool (ranked on the rank split, each with its select-split AUROC),
:func:`choose` keeps the first ``k`` candidates that pass every filter, all measured on select
data: AUROC ≥ ``min_auroc`` (select texts), the clean false-open rate at the latent's own
threshold (the select part of the clean windows, :mod:`saedetox.data.windows`) ≤
``max_clean_open``, and the output effect (:mod:`saedetox.discover.output_effect`, select toxic
texts) ≥ ``min_output_effect``. :func:`set_gate` then sets the thresholds: per latent at the
clean sentences' quantile (``gate_rate`` 0), or jointly to ``gate_rate`` on the select windows
(:func:`saedetox.discover.gate.joint_thresholds`), and reports the set's false-open rate on the
``test`` windows, which chose nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from saedetox.data.location import resolve_data_dir
from saedetox.data.windows import clean_windows
from saedetox.discover.gate import (
    calibrate_detector,
    detector_window_logits,
    false_open_rate,
    joint_thresholds,
    per_latent_open,
    window_maxima,
)
from saedetox.discover.options import GateOptions
from saedetox.discover.output_effect import output_effects, token_acts
from saedetox.model.load import LoadedModel
from saedetox.sae.loaded import LoadedSAE

OUTPUT_TEXTS = 64  # select toxic texts the output effect is measured on


@dataclass
class Windows:
    """Clean windows: ``select`` chooses, ``test`` reports."""

    select: list[str]
    test: list[str]
    words: int


@dataclass
class Choice:
    selected: list[int]
    clean_open: dict[int, float] = field(default_factory=dict)  # select windows, own threshold
    output_effect: dict[int, float] = field(default_factory=dict)
    window_acts: dict[int, list[np.ndarray]] = field(default_factory=dict)  # per latent, per select window [T]


def reference_windows(words: int, data_dir: str | None = None) -> Windows:
    """The reference corpus' clean windows of ``words`` words (:func:`saedetox.data.windows.clean_windows`)."""
    root = resolve_data_dir(data_dir)
    return Windows(clean_windows(root, words, "select"), clean_windows(root, words, "test"), words)


def choose(
    lm: LoadedModel,
    sae: LoadedSAE,
    hook: str,
    pool: Sequence[int],
    sel_auc: dict[int, float],
    own_threshold: dict[int, float],
    k: int,
    min_auroc: float,
    opts: GateOptions,
    select_toxic: Sequence[str],
    targets: Sequence[int],
    windows: Windows | None,
) -> Choice:
    """The first ``k`` candidates passing every filter (module docstring); the measures of the selected."""
    cands = [i for i in pool if sel_auc[i] >= min_auroc]
    c = Choice([])
    if windows is not None and windows.select:
        measured = cands if opts.max_clean_open is not None else cands[:k]
        acts, _ = token_acts(lm, sae, windows.select, measured, hook)
        mx = window_maxima(acts, len(measured))
        rates = per_latent_open(mx, [own_threshold[i] for i in measured])
        for j, i in enumerate(measured):
            c.clean_open[i] = float(rates[j])
            c.window_acts[i] = [a[:, j] for a in acts]
    if opts.max_clean_open is not None:
        cands = [i for i in cands if c.clean_open[i] <= opts.max_clean_open]
    if opts.min_output_effect is not None:
        c.output_effect.update(_effects(lm, sae, hook, cands, select_toxic, targets, opts))
        cands = [i for i in cands if c.output_effect[i] >= opts.min_output_effect]
    c.selected = cands[:k]
    missing = [i for i in c.selected if i not in c.output_effect]
    c.output_effect.update(_effects(lm, sae, hook, missing, select_toxic, targets, opts))
    return c


def _effects(
    lm: LoadedModel,
    sae: LoadedSAE,
    hook: str,
    latents: Sequence[int],
    texts: Sequence[str],
    targets: Sequence[int],
    opts: GateOptions,
) -> dict[int, float]:
    if not latents:
        return {}
    dirs = sae.unit_directions(list(latents)).cpu()
    eff = output_effects(lm, hook, dirs, list(texts[:OUTPUT_TEXTS]), targets, opts.output_push, sae.prepend_bos)
    return {int(i): float(e) for i, e in zip(latents, eff, strict=True)}


def set_gate(
    lm: LoadedModel,
    sae: LoadedSAE,
    hook: str,
    choice: Choice,
    quantile_thresholds: list[float],
    detector: dict[str, Any] | None,
    opts: GateOptions,
    windows: Windows | None,
) -> tuple[list[float], dict[str, Any] | None, dict[str, Any] | None]:
    """(thresholds, detector, gate record): jointly calibrated when ``opts.gate_rate`` > 0 (module docstring)."""
    sel = choice.selected
    if windows is None or not sel or not windows.select:
        return quantile_thresholds, detector, None
    sel_acts = [np.stack([choice.window_acts[i][w] for i in sel], 1) for w in range(len(windows.select))]
    sel_max = window_maxima(sel_acts, len(sel))
    thresholds, record = quantile_thresholds, {"calibration": "per-latent clean-sentence quantile"}
    if opts.joint_gate:
        thresholds, q = joint_thresholds(sel_max, opts.gate_rate)
        record = {
            "calibration": "joint",
            "rate": opts.gate_rate,
            "quantile": q,
            "quantile_thresholds": quantile_thresholds,
        }
        if detector is not None:
            detector = calibrate_detector(detector, sel_acts, opts.gate_rate)
    test_acts, _ = token_acts(lm, sae, windows.test, sel, hook)
    test_max = window_maxima(test_acts, len(sel))
    record.update(
        window_words=windows.words,
        select_windows=len(windows.select),
        test_windows=len(windows.test),
        select_false_open=false_open_rate(sel_max, thresholds),
        test_false_open=false_open_rate(test_max, thresholds),
        test_false_open_quantile_gates=false_open_rate(test_max, quantile_thresholds),
        test_open_per_latent=[float(r) for r in per_latent_open(test_max, thresholds)],
    )
    if detector is not None:
        record["detector_test_false_open"] = float((detector_window_logits(detector, test_acts) >= 0).mean())
    return thresholds, detector, record
