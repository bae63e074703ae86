"""Steering levels on the reference world covering every mode, shared by the serving tests."""

from __future__ import annotations

from saedetox.steering.spec import Intervention, SteeringSpec

LATENTS = [4, 9, 14, 16, 19, 25, 26, 27]  # latents that fire on some of the prompts, not all
PROMPTS = [
    "You are such a",
    "The weather today is",
    "I hate you, you stupid",
    "Shut up and",
    "Thank you so much for",
    "What the hell is wrong with",
]


def level_specs(sae) -> dict[str, SteeringSpec | None]:
    """off, two constant levels, and one level per other mode (gates low enough to open on some prompts)."""

    def spec(**kw) -> SteeringSpec:
        return SteeringSpec([Intervention(sae=sae, latents=LATENTS, **kw)])

    detector = {
        "kind": "latents",
        "coef": [1.0] * len(LATENTS),
        "scale": [1.0] * len(LATENTS),
        "intercept": -1.0,
        "pooling": "max",
    }
    return {
        "off": None,
        "low": spec(mode="constant", tier=0.1),
        "high": spec(mode="constant", tier=0.4),
        "conditional": spec(mode="conditional", tier=0.4, threshold=0.5),
        "token": spec(mode="token", tier=0.6, threshold=0.5),
        "clamp": spec(mode="clamp", clamp_value=0.0),
        "adaptive": spec(mode="adaptive", tier=0.4, detector=detector),
        "generated": spec(mode="constant", tier=0.4, positions="generated"),
    }
