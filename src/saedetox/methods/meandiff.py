"""The ``meandiff`` baseline: contrastive mean-difference steering (CAA / ActAdd style).

The unit vector of mean(toxic activations) − mean(clean activations) at the same hook as the
SAE, subtracted at every position. Strength tiers match the SAE tiers by vector norm (same
fraction of the median residual norm).
"""

from __future__ import annotations

import torch

from saedetox.errors import SaedetoxError
from saedetox.methods.base import Method
from saedetox.methods.contrast import ContrastData, cached, token_mean
from saedetox.methods.sae import steering_method
from saedetox.model.load import LoadedModel
from saedetox.steering.spec import Intervention, SteeringSpec


def meandiff_direction(lm: LoadedModel, hook: str, data: ContrastData) -> torch.Tensor:
    v = token_mean(lm, data.toxic, hook) - token_mean(lm, data.clean, hook)
    if float(v.norm()) == 0:
        raise SaedetoxError("Toxic and clean texts give the same mean activation; cannot build a direction.")
    return v / v.norm()


def meandiff_spec(direction: torch.Tensor, hook: str, tier: str | float | None, strength: float | None) -> SteeringSpec:
    iv = Intervention(vector=direction.tolist(), hook=hook, tier=tier, strength=strength, label="meandiff")
    return SteeringSpec([iv]).validate()


def meandiff_method(
    lm: LoadedModel, hook: str, data: ContrastData, tier: str | float | None, strength: float | None
) -> Method:
    direction = cached(data, ("meandiff", id(lm.model), hook), lambda: meandiff_direction(lm, hook, data))
    m = steering_method(lm, meandiff_spec(direction, hook, tier, strength), "meandiff")
    m.details["sae"] = None
    return m
