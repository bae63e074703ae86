"""The ``sae`` method (and any steering-spec method): a spec's hooks attached while the method is active."""

from __future__ import annotations

from typing import Any

from saedetox.methods.base import Method
from saedetox.model.load import LoadedModel
from saedetox.steering.spec import SteeringSpec
from saedetox.steering.steerer import Steerer


def steering_method(lm: LoadedModel, spec: SteeringSpec, name: str = "sae") -> Method:
    """A method that attaches ``spec``'s hooks while it is active and reports what they did (``stats``)."""
    steerer = Steerer(lm, spec)
    first = steerer.resolved[0]
    details: dict[str, Any] = {
        "mode": first.spec.mode,
        "tier": first.spec.tier,
        "push": first.spec.push,
        "alpha": first.alpha,
        "sae": first.spec.sae_name,
        "hook": first.hook,
        "latents": first.spec.latents,
        "threshold": first.spec.threshold,
        "positions": first.spec.positions,
        "steering": steerer.describe(),
    }
    if first.spec.detector is not None:
        details["detector"] = first.spec.detector
    return Method(name=name, context=lambda: steerer, details=details, stats=steerer.stats, steerer=steerer)
