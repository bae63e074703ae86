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
    push: float | None = None  # target effective push (calibrated on a pilot for gated/adaptive modes)
    threshold: float | str = "auto"
    positions: str = "all"
    capability: bool = False
    sae: str | None = None
    clamp_value: float = 0.0


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
            for tier, strength, push in levels:
                level = tier_label(tier) if tier is not None else f"a{strength:g}" if push is None else f"p{push:g}"
                if g.method == "sae":
                    name = f"sae-{mode}-{level}"
                elif g.method == "meandiff" and mode != "constant":
                    name = f"meandiff-{mode}-{level}"
                else:
                    name = f"{g.method}-{level}"
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
                    )
                )
    names = [r.name for r in out]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise SaedetoxError(f"Duplicate run name(s) in the sweep: {', '.join(sorted(dup))}.")
    return out
