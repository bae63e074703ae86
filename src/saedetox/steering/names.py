"""The steering vocabulary as plain names (no torch): modes, tiers, gate positions, detector poolings.

:mod:`saedetox.steering.spec` defines their meaning; the command line and the methods registry list
them from here without loading the steering machinery.
"""

from __future__ import annotations

MODES: tuple[str, ...] = ("constant", "conditional", "token", "clamp", "adaptive")
VECTOR_MODES: tuple[str, ...] = ("constant", "adaptive")  # what a raw direction (baselines) supports
GATED_VECTOR_MODES: tuple[str, ...] = ("constant", "conditional", "adaptive")  # a direction an SAE's latents gate
TIERS: tuple[str, ...] = ("low", "medium", "high")
POSITIONS: tuple[str, ...] = ("all", "generated")
POOLINGS: tuple[str, ...] = ("max", "token")
