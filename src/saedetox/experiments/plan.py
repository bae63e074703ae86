"""The sweep's runs: run groups expanded into named runs (names are unique and stable)."""

from __future__ import annotations

from dataclasses import dataclass

from saedetox.errors import SaedetoxError
from saedetox.experiments.config import SweepConfig
from saedetox.steering.spec import tier_label


@dataclass
class PlannedRun:
    """One named run of a sweep: a method, and for steering its mode, level and gate settings."""

    name: str
    method: str
    mode: str | None = None
    tier: str | float | None = None
    strength: float | None = None
    threshold: float | str = "auto"
    positions: str = "all"
    capability: bool = False
    sae: str | None = None
    clamp_value: float = 0.0


def plan(cfg: SweepConfig) -> list[PlannedRun]:
    """Expand run groups into named runs (names are unique and stable)."""
    out: list[PlannedRun] = []
    for g in cfg.runs:
        levels: list[tuple[str | None, float | None]] = [(t, None) for t in g.tiers] + [(None, s) for s in g.strengths]
        if g.method in ("none", "prompt", "aura"):
            out.append(PlannedRun(name=g.method, method=g.method, capability=g.capability))
            continue
        if not levels:
            levels = [("medium", None)]
        for mode in g.modes if g.method == "sae" else [None]:
            if mode == "clamp":  # clamping has no strength: one run per clamp value
                out.append(
                    PlannedRun(
                        name=f"sae-clamp-c{g.clamp_value:g}",
                        method="sae",
                        mode="clamp",
                        threshold=g.threshold,
                        positions=g.positions,
                        capability=g.capability,
                        sae=cfg.sae,
                        clamp_value=g.clamp_value,
                    )
                )
                continue
            for tier, strength in levels:
                level = tier_label(tier) if tier is not None else f"a{strength:g}"
                name = f"sae-{mode}-{level}" if g.method == "sae" else f"{g.method}-{level}"
                out.append(
                    PlannedRun(
                        name=name,
                        method=g.method,
                        mode=mode,
                        tier=tier,
                        strength=strength,
                        threshold=g.threshold,
                        positions=g.positions,
                        capability=g.capability,
                        sae=cfg.sae if g.method == "sae" else None,
                    )
                )
    names = [r.name for r in out]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise SaedetoxError(f"Duplicate run name(s) in the sweep: {', '.join(sorted(dup))}.")
    return out
