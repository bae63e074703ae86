"""Build the method a run evaluates: ``none``, ``sae`` (a steering spec), or a baseline."""

from __future__ import annotations

from typing import Any

from saedetox.errors import SaedetoxError
from saedetox.evaluate import Method
from saedetox.model.load import LoadedModel
from saedetox.steering.spec import SteeringSpec
from saedetox.steering.steerer import Steerer

BASELINES = ("prompt", "meandiff", "aura", "surgery")
METHOD_NAMES = ("none", "sae", *BASELINES)


def steering_method(lm: LoadedModel, spec: SteeringSpec, name: str = "sae") -> Method:
    """A method that attaches ``spec``'s hooks while it is active."""
    steerer = Steerer(lm, spec)
    first = steerer.resolved[0]
    details: dict[str, Any] = {
        "mode": first.spec.mode,
        "tier": first.spec.tier,
        "alpha": first.alpha,
        "sae": first.spec.sae,
        "hook": first.hook,
        "latents": first.spec.latents,
        "threshold": first.spec.threshold,
        "positions": first.spec.positions,
        "steering": steerer.describe(),
    }
    return Method(name=name, context=lambda: steerer, details=details)


def build_method(lm: LoadedModel, name: str, spec: SteeringSpec | None = None, **options: Any) -> Method:
    if name == "none":
        if spec is not None:
            raise SaedetoxError("Method 'none' takes no steering options; use --method sae.")
        return Method()
    if name == "sae":
        if spec is None:
            raise SaedetoxError("Method 'sae' needs --sae and --features (or --spec).")
        return steering_method(lm, spec)
    if name in BASELINES:
        from saedetox.baselines import build_baseline

        return build_baseline(lm, name, spec=spec, **options)
    raise SaedetoxError(f"Unknown method '{name}': use one of {', '.join(METHOD_NAMES)}.")
