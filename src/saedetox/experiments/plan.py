"""The sweep's runs: run groups expanded into named runs (names are unique and stable)."""

from __future__ import annotations

from dataclasses import dataclass

from saedetox.errors import SaedetoxError
from saedetox.experiments.config import SweepConfig
from saedetox.steering.spec import TIER_FACTORS, tier_label


@dataclass
class PlannedRun:
    """One named run of a sweep: a method, and for steering its mode, level and gate settings."""

    name: str
    method: str
    mode: str | None = None
    tier: str | float | None = None
    strength: float | None = None
    push: float | None = None  # target effective push (calibrated on a pilot for gated/adaptive modes)
    threshold: float | str = "auto"
    positions: str = "all"
    capability: bool = False
    sae: str | None = None
    clamp_value: float = 0.0
    pooling: str | None = None  # adaptive runs: the detector's pooling (None: the detector's own)
    curve: str | None = None  # the strength curve the run belongs to (None: a point method)
    level: float | None = None  # its level along the curve: push, tier fraction or strength


def plan(cfg: SweepConfig) -> list[PlannedRun]:
    """Expand run groups into named runs (names are unique and stable)."""
    out: list[PlannedRun] = []
    for g in cfg.runs:
        levels: list[tuple[str | float | None, float | None, float | None]] = [
            *((t, None, None) for t in g.tiers),
            *((None, s, None) for s in g.strengths),
            *((None, None, float(p)) for p in g.push),
        ]
        if g.method in ("none", "prompt", "aura"):
            out.append(PlannedRun(name=g.method, method=g.method, capability=g.capability))
            continue
        if not levels:
            levels = [("medium", None, None)]
        for mode in g.modes if g.method in ("sae", "meandiff") else [None]:
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
            pooled = f"{mode}-{g.pooling}" if mode == "adaptive" and g.pooling else mode
            if g.method == "sae":
                curve = f"sae-{pooled}"
            elif g.method == "meandiff" and mode != "constant":
                curve = f"meandiff-{pooled}"
            else:
                curve = g.method
            for tier, strength, push in levels:
                level = tier_label(tier) if tier is not None else f"a{strength:g}" if push is None else f"p{push:g}"
                name = f"{curve}-{level}"
                out.append(
                    PlannedRun(
                        name=name,
                        method=g.method,
                        mode=mode,
                        tier=tier,
                        strength=strength,
                        push=push,
                        threshold=g.threshold,
                        positions=g.positions,
                        capability=g.capability,
                        sae=cfg.sae if g.method == "sae" else None,
                        pooling=g.pooling if mode == "adaptive" else None,
                        curve=curve,
                        level=_level(tier, strength, push),
                    )
                )
    names = [r.name for r in out]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise SaedetoxError(f"Duplicate run name(s) in the sweep: {', '.join(sorted(dup))}.")
    return out


def _level(tier: str | float | None, strength: float | None, push: float | None) -> float | None:
    """A run's level along its curve: the push, the tier's fraction of the median norm, or the strength."""
    if push is not None:
        return float(push)
    if tier is not None:
        return TIER_FACTORS[tier] if isinstance(tier, str) else float(tier)
    return None if strength is None else float(strength)
