"""What a Steerer measures while generating: effective push, gate openings, firing rate, adaptive scale.

Counters live on the model's device and are only added to inside hooks (no host
synchronisation); :meth:`InterventionStats.summary` reads them back once, at the end.

* *effective push* = mean over generated positions (the positions whose outputs predict the
  generated tokens: padded prompt width − 1 … end, pad and post-EOS positions excluded) of
  ‖Δx‖, divided by the median residual norm at the hook;
* *nominal push* = ‖α Σ û‖ / median norm (what a tier sets; = effective push for constant mode);
* ``gate_open_in_prompt`` = share of generated sequences whose gate opened at a prompt position
  (conditional: the sticky gate; token: any selected latent over its gate; adaptive: p ≥ ½);
* ``firing_rate`` = share of generated positions where the gate / any latent is open (p ≥ ½);
* ``mean_scale`` = mean adaptive scale p over generated positions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


def _add(total: torch.Tensor | None, value: torch.Tensor) -> torch.Tensor:
    value = value.detach().to(torch.float64)
    return value if total is None else total + value


@dataclass
class InterventionStats:
    """Running sums for one intervention (tensors on the model's device, or None before any data).

    Hooks only queue each call's tensors (:meth:`add_positions` launches no kernel); the queue is
    reduced in one go per generated batch (:meth:`flush`, which the Steerer calls when a
    ``generation`` block ends) or when read: on a GPU, reducing at every decode step cost more host
    time than the steering itself.
    """

    push_sum: torch.Tensor | None = None
    positions: torch.Tensor | None = None
    open_sum: torch.Tensor | None = None
    scale_sum: torch.Tensor | None = None
    prompt_open: torch.Tensor | None = None
    sequences: int = 0  # known on the host from shapes alone
    pending: list[list[Any]] = field(default_factory=list)  # [delta_norm, counted, opened, scale, weight] per call
    _last_prompt: tuple[torch.Tensor, int] | None = None  # the last call's add_prompt (for repeat_last)

    MAX_PENDING = 256

    def add_positions(
        self, delta_norm: torch.Tensor, counted: torch.Tensor, opened: torch.Tensor | None, scale: torch.Tensor | None
    ) -> None:
        """Add the generated positions of one call: ``counted`` ``[B, T]`` bool selects them."""
        if len(self.pending) >= self.MAX_PENDING:
            self.flush()
        self.pending.append([delta_norm.detach(), counted, opened, scale, 1])
        self._last_prompt = None

    def add_prompt(self, opened: torch.Tensor) -> None:
        """``opened`` ``[B]`` bool: whether each generated sequence's gate opened inside its prompt."""
        value = opened.float().sum()
        self.prompt_open = _add(self.prompt_open, value)
        self.sequences += int(opened.shape[0])
        self._last_prompt = (value, int(opened.shape[0]))

    def repeat_last(self, n: int) -> None:
        """The last call's rows now stand for ``n`` sequences each (a shared prefill repeated to its samples)."""
        if n <= 1:
            return
        if self.pending:
            self.pending[-1][4] *= n
        if self._last_prompt is not None:
            value, seqs = self._last_prompt
            self.prompt_open = _add(self.prompt_open, value * (n - 1))
            self.sequences += seqs * (n - 1)
            self._last_prompt = (value * n, seqs * n)

    def flush(self) -> None:
        """Reduce the queued calls into the running sums (one reduction per sum, whatever the number of calls)."""
        if not self.pending:
            return
        pending, self.pending = self.pending, []
        c = torch.cat([p[1].reshape(-1) for p in pending]).to(torch.float32)
        start = 0
        for p in pending:  # a shared prefill's rows stand for several sequences each
            if p[4] != 1:
                c[start : start + p[1].numel()] *= p[4]
            start += p[1].numel()
        delta = torch.cat([p[0].reshape(-1) for p in pending]).float()
        self.push_sum = _add(self.push_sum, (delta * c).sum())
        self.positions = _add(self.positions, c.sum())
        for slot, name in ((2, "open_sum"), (3, "scale_sum")):
            parts = [p[slot] for p in pending]
            if all(v is not None for v in parts):
                v = torch.cat([t.reshape(-1) for t in parts]).float()
                setattr(self, name, _add(getattr(self, name), (v * c).sum()))

    def totals(self) -> dict[str, float | None]:
        """The running sums as plain numbers (JSON-ready; ``None`` where nothing was recorded)."""
        self.flush()
        out: dict[str, float | None] = {
            k: None if getattr(self, k) is None else float(getattr(self, k)) for k in TOTALS if k != "sequences"
        }
        out["sequences"] = float(self.sequences)
        return out

    def summary(self, median_norm: float | None) -> dict[str, float | None]:
        return summary_of(self.totals(), median_norm)


#: the running sums a batch's statistics consist of (:meth:`InterventionStats.totals`)
TOTALS: tuple[str, ...] = ("push_sum", "positions", "open_sum", "scale_sum", "prompt_open", "sequences")


def combine_totals(parts: list[dict[str, float | None]]) -> dict[str, float | None]:
    """The sums of several batches' :meth:`InterventionStats.totals`, added in the order given.

    A sum is ``None`` when no batch recorded it; a run adds its batches in batch order, so a run
    resumed from stored batches gets the same numbers, bit for bit, as one that never stopped.
    """
    out: dict[str, float | None] = {k: None for k in TOTALS}
    for part in parts:
        for k in TOTALS:
            v = part.get(k)
            if v is not None:
                out[k] = float(v) if out[k] is None else out[k] + float(v)
    return out


def summary_of(totals: dict[str, float | None], median_norm: float | None) -> dict[str, float | None]:
    """Effective push, gate openings, firing rate, mean scale and position count from the sums."""
    n = totals.get("positions") or 0.0
    seqs = totals.get("sequences") or 0.0

    def per_position(total: float | None) -> float | None:
        return total / n if total is not None and n > 0 else None

    push = per_position(totals.get("push_sum"))
    prompt_open = totals.get("prompt_open")
    return {
        "effective_push": push / median_norm if push is not None and median_norm else None,
        "gate_open_in_prompt": prompt_open / seqs if prompt_open is not None and seqs else None,
        "firing_rate": per_position(totals.get("open_sum")),
        "mean_scale": per_position(totals.get("scale_sum")),
        "generated_positions": int(n),
    }


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``{"effective_push": …, "interventions": rows}``; the run-level push is the mean over interventions."""
    pushes = [r["effective_push"] for r in rows if r.get("effective_push") is not None]
    return {"effective_push": sum(pushes) / len(pushes) if pushes else None, "interventions": rows}
