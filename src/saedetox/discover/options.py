"""Discovery's specificity, output-effect and gate settings: ``saedetox discover`` options, ``discovery:`` keys.

Defaults: no filter, the text detector, and a joint gate (:data:`DEFAULT_GATE_RATE`): the selected
set's thresholds and the detector calibrated together so that the set opens on at most 5% of clean
windows. ``gate_rate = 0`` turns the joint gate off (per-latent thresholds at the clean sentences'
``gate_quantile``, which open on most clean windows when many latents are selected). Every choice these
settings make is made on the select split (or the ``select`` part of the clean windows,
:mod:`saedetox.data.windows`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from saedetox.discover.output_effect import DEFAULT_PUSH
from saedetox.errors import SaedetoxError

DETECTOR_TARGETS = ("text", "next-token")
DEFAULT_GATE_RATE = 0.05  # the set opens on at most 5% of clean windows (select part)
DEFAULT_WINDOW_WORDS = 30  # RealToxicityPrompts challenging:dev prompts average 12 words; + 20 new tokens


def _opt(default: Any, help: str, **cli: Any) -> Any:
    return field(default=default, metadata={"help": help, **cli})


@dataclass
class GateOptions:
    """How discovery keeps latents specific to toxicity and sets the gate and detector thresholds."""

    max_clean_open: float | None = _opt(
        None, "Keep only latents that open the gate on at most this share of clean windows (select part)."
    )
    min_output_effect: float | None = _opt(
        None, "Keep only latents whose negative push lowers the toxic-token probability by at least this share."
    )
    output_push: float = _opt(DEFAULT_PUSH, "Output-effect push, as a fraction of the median residual norm.")
    gate_rate: float = _opt(
        DEFAULT_GATE_RATE,
        "Calibrate the gate and detector jointly: the set opens on at most this share of clean windows "
        "(select part of the reference corpus' windows); 0 turns it off (per-latent thresholds).",
    )
    window_words: int = _opt(DEFAULT_WINDOW_WORDS, "Clean window length in words (prompt + continuation).")
    detector_target: str = _opt(
        "text",
        "Detector for adaptive steering: text (per-text maxima) or next-token (per position).",
        choices=DETECTOR_TARGETS,
    )

    def __post_init__(self) -> None:
        if self.gate_rate is None:  # null in a config file: the same as 0, the joint gate off
            self.gate_rate = 0.0
        for name in ("max_clean_open", "gate_rate"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1):
                raise SaedetoxError(f"{name} must be in [0, 1), got {v!r}.")
        v = self.min_output_effect
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or v > 1):
            raise SaedetoxError(f"min_output_effect must be a number ≤ 1, got {v!r}.")
        if (
            isinstance(self.output_push, bool)
            or not isinstance(self.output_push, (int, float))
            or self.output_push <= 0
        ):
            raise SaedetoxError(f"output_push must be > 0, got {self.output_push!r}.")
        if isinstance(self.window_words, bool) or not isinstance(self.window_words, int) or self.window_words < 1:
            raise SaedetoxError(f"window_words must be a whole number ≥ 1, got {self.window_words!r}.")
        if self.detector_target not in DETECTOR_TARGETS:
            raise SaedetoxError(f"Unknown detector_target '{self.detector_target}': use {', '.join(DETECTOR_TARGETS)}.")

    @property
    def needs_windows(self) -> bool:
        """Whether clean windows are read (a specificity filter or a joint gate)."""
        return self.max_clean_open is not None or self.joint_gate

    @property
    def joint_gate(self) -> bool:
        """Whether the gate is calibrated jointly (``gate_rate`` > 0)."""
        return bool(self.gate_rate)


#: the settings under which discovery sets per-latent thresholds and reads no clean window
UNGATED = GateOptions(gate_rate=0.0)
