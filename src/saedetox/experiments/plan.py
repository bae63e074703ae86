"""The sweep's runs: run groups expanded into named runs (names are unique and stable)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from saedetox.errors import SaedetoxError
from saedetox.experiments.config import SweepConfig
from saedetox.methods.registry import get_method
from saedetox.steering.spec import TIER_FACTORS, SteeringSpec, tier_label
from saedetox.steering.steer import steering_spec


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
    train_judge: str | None = None  # a method that learns from a judge's labels: that judge (None: the default)
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
        info = get_method(g.method)
        if not info.curve:  # a point method: one run
            out.append(PlannedRun(name=g.method, method=g.method, capability=g.capability, train_judge=g.train_judge))
            continue
        if not levels:
            levels = [("medium", None, None)]
        steered = "spec" in info.needs  # its runs steer the sweep's SAE
        for mode in g.modes if info.modes else [None]:
            if mode == "clamp":  # clamping has no strength: one run per clamp value
                out.append(
                    PlannedRun(
                        name=f"{g.method}-clamp-c{g.clamp_value:g}",
                        method=g.method,
                        mode="clamp",
                        threshold=g.threshold,
                        positions=g.positions,
                        capability=g.capability,
                        sae=cfg.sae if steered else None,
                        clamp_value=g.clamp_value,
                    )
                )
                continue
            pooled = f"{mode}-{g.pooling}" if mode == "adaptive" and g.pooling else mode
            named = mode is not None and (info.mode_in_name or mode != info.modes[0])
            curve = f"{g.method}-{pooled}" if named else g.method
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
                        sae=cfg.sae if steered else None,
                        pooling=g.pooling if mode == "adaptive" else None,
                        train_judge=g.train_judge,
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


def run_spec(
    cfg: SweepConfig,
    r: PlannedRun,
    latents: list[int],
    gates: list[float] | None = None,
    detector: dict[str, Any] | None = None,
) -> SteeringSpec | None:
    """A planned run's steering (:func:`~saedetox.steering.steer.steering_spec`), or None for a method without.

    ``gates``: discovery's per-latent gates; ``detector``: adaptive mode's, given the run's pooling.
    """
    if "spec" not in get_method(r.method).needs:
        return None
    mode = r.mode or "constant"
    if detector is not None and r.pooling is not None:
        detector = {**detector, "pooling": r.pooling}
    return steering_spec(
        {"selected": list(latents), "thresholds": gates},
        sae=r.sae,
        mode=mode,  # type: ignore[arg-type]
        tier=r.tier,  # type: ignore[arg-type]
        strength=r.strength,
        push=r.push,
        hook=cfg.hook,
        positions=r.positions,  # type: ignore[arg-type]
        threshold=r.threshold,
        clamp_value=r.clamp_value,
        detector=detector,
    )
