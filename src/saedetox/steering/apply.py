"""One intervention applied to one batch of hidden states: the mode dispatch shared by every backend.

The HF backend (:class:`~saedetox.steering.steerer.Steerer`, padded ``[B, T, d]`` batches) and the
vLLM backend (:mod:`saedetox.serving.flat`, flattened batches packed per request) both call
:func:`apply_intervention`, which calls the arithmetic of :mod:`saedetox.steering.modes`. Per-sequence
state (the conditional gate, the adaptive detector's running maximum) is passed in and handed back,
so each backend keeps it where its sequences live.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch

from saedetox.steering import modes


class Steerable(Protocol):
    """What :func:`apply_intervention` reads of an intervention (resolved or compiled)."""

    mode: str
    alpha: float
    vector: torch.Tensor
    directions: torch.Tensor | None
    decoder_rows: torch.Tensor | None
    gate: torch.Tensor | float
    clamp_value: float
    sae: Any
    latents: torch.Tensor | None
    detector: Any

    def read_latents(self, x: torch.Tensor) -> torch.Tensor: ...


@dataclass
class Applied:
    """The steered hidden state and what the step did (for statistics and per-sequence state)."""

    out: torch.Tensor
    opened: torch.Tensor | None = None  # [B, T] bool: gate open / latent fired / p >= 0.5
    scale: torch.Tensor | None = None  # [B, T] adaptive strength p
    gate_last: torch.Tensor | None = None  # [B] conditional gate after this call
    max_last: torch.Tensor | None = None  # [B, k] adaptive running maximum after this call


def apply_intervention(
    r: Steerable,
    x: torch.Tensor,
    where: torch.Tensor,
    real: torch.Tensor | None,
    counts: torch.Tensor,
    prev_gate: torch.Tensor | None = None,
    prev_max: torch.Tensor | None = None,
) -> Applied:
    """Steer ``x`` ``[B, T, d]``: ``where`` ``[B, T, 1]`` may be touched, ``real`` ``[B, T]`` are not
    padding, ``counts`` ``[B, T]`` may open gates (real and not BOS); ``prev_*`` carry a sequence's
    state from earlier calls (None: a new sequence)."""
    mode = r.mode
    if mode == "constant":
        return Applied(modes.constant(x, where, r.vector))
    if mode == "adaptive":
        scale, max_last = _adaptive_scale(r, x, counts, prev_max)
        return Applied(modes.adaptive(x, where, scale, r.vector), scale >= 0.5, scale, max_last=max_last)
    acts = r.read_latents(x)  # [B, T, |F|], SAE dtype
    if mode == "clamp":
        assert r.sae is not None and r.decoder_rows is not None
        scale = r.sae.output_scale(x.to(acts.dtype))
        return Applied(modes.clamp(x, where, acts, r.clamp_value, scale, r.decoder_rows))
    fires = (acts > r.gate) & counts.unsqueeze(-1)
    if mode == "token":
        assert r.directions is not None
        return Applied(modes.token(x, where, fires, r.directions, r.alpha), fires.any(-1))
    if prev_gate is None or prev_gate.shape[0] != x.shape[0]:
        prev_gate = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    out, opened = modes.conditional(x, where, fires, real, prev_gate, r.vector)
    return Applied(out, opened, gate_last=opened[:, -1])


def _adaptive_scale(
    r: Steerable, x: torch.Tensor, counts: torch.Tensor, before: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``[B, T]`` detector probability p (0 at pad and BOS), pooled as the detector says."""
    det = r.detector
    assert det is not None
    if det.kind == "projection":
        assert det.projection is not None
        evidence = x.float() @ det.projection  # [B, T, 1]
    else:
        evidence = r.read_latents(x).float()
    max_last = None
    if det.pooling == "max":
        if before is None or before.shape[0] != x.shape[0]:
            before = torch.full((x.shape[0], evidence.shape[-1]), modes.NO_EVIDENCE, device=x.device)
        evidence = modes.running_max(evidence, counts, before)
        max_last = evidence[:, -1]
    return modes.detector_prob(evidence, det.coef, det.inv_scale, det.intercept) * counts, max_last
