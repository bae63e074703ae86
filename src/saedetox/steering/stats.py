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

from dataclasses import dataclass
from typing import Any

import torch


def _add(total: torch.Tensor | None, value: torch.Tensor) -> torch.Tensor:
    value = value.detach().to(torch.float64)
    return value if total is None else total + value


@dataclass
class InterventionStats:
    """Running sums for one intervention (tensors on the model's device, or None before any data)."""

    push_sum: torch.Tensor | None = None
    positions: torch.Tensor | None = None
    open_sum: torch.Tensor | None = None
    scale_sum: torch.Tensor | None = None
    prompt_open: torch.Tensor | None = None
    sequences: int = 0  # known on the host from shapes alone
    _last: dict[str, Any] | None = None  # the last call's contributions (for repeat_last)

    def add_positions(
        self, delta_norm: torch.Tensor, counted: torch.Tensor, opened: torch.Tensor | None, scale: torch.Tensor | None
    ) -> None:
        """Add the generated positions of one call: ``counted`` ``[B, T]`` bool selects them."""
        c = counted.to(torch.float32)
        last: dict[str, Any] = {"push_sum": (delta_norm.float() * c).sum(), "positions": c.sum()}
        if opened is not None:
            last["open_sum"] = (opened.float() * c).sum()
        if scale is not None:
            last["scale_sum"] = (scale.float() * c).sum()
        self._add_all(last)
        self._last = last

    def add_prompt(self, opened: torch.Tensor) -> None:
        """``opened`` ``[B]`` bool: whether each generated sequence's gate opened inside its prompt."""
        last = {"prompt_open": opened.float().sum(), "sequences": int(opened.shape[0])}
        self._add_all(last)
        self._last = {**(self._last or {}), **last}

    def _add_all(self, values: dict[str, Any]) -> None:
        for k, v in values.items():
            if k == "sequences":
                self.sequences += v
            else:
                setattr(self, k, _add(getattr(self, k), v))

    def repeat_last(self, n: int) -> None:
        """The last call's rows now stand for ``n`` sequences each (a shared prefill repeated to its samples)."""
        if self._last is not None and n > 1:
            self._add_all({k: v * (n - 1) for k, v in self._last.items()})

    def summary(self, median_norm: float | None) -> dict[str, float | None]:
        n = float(self.positions) if self.positions is not None else 0.0
        seqs = self.sequences

        def per_position(total: torch.Tensor | None) -> float | None:
            return float(total) / n if total is not None and n > 0 else None

        push = per_position(self.push_sum)
        return {
            "effective_push": push / median_norm if push is not None and median_norm else None,
            "gate_open_in_prompt": float(self.prompt_open) / seqs if self.prompt_open is not None and seqs else None,
            "firing_rate": per_position(self.open_sum),
            "mean_scale": per_position(self.scale_sum),
            "generated_positions": int(n),
        }


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``{"effective_push": …, "interventions": rows}``; the run-level push is the mean over interventions."""
    pushes = [r["effective_push"] for r in rows if r.get("effective_push") is not None]
    return {"effective_push": sum(pushes) / len(pushes) if pushes else None, "interventions": rows}
