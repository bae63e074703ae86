"""The ``sae-gated-meandiff`` method: the SAE decides when to steer, the mean difference decides how.

The steered vector is the ``meandiff`` baseline's unit direction (toxic minus clean mean
activation at the SAE's hook, from the same contrast data); the SAE's selected latents only
decide where it is added, with the SAE run's own machinery: ``conditional`` opens the sticky gate
at the first position where a selected latent passes its gate, ``adaptive`` scales the push by
the latent detector's probability. So a run differs from ``sae-conditional`` / ``sae-adaptive``
only in the direction, and from ``meandiff`` only in where it steers. Constant mode would be
``meandiff`` itself, so the method has no constant mode (and nothing to fold into weights).
"""

from __future__ import annotations

from dataclasses import replace

from saedetox.errors import SaedetoxError
from saedetox.methods.base import Method
from saedetox.methods.contrast import ContrastData, cached
from saedetox.methods.meandiff import meandiff_direction
from saedetox.methods.sae import steering_method
from saedetox.model.load import LoadedModel
from saedetox.steering.resolve import Resolver
from saedetox.steering.spec import SteeringSpec

MODES: tuple[str, ...] = ("conditional", "adaptive")


def gated_meandiff_spec(lm: LoadedModel, spec: SteeringSpec, data: ContrastData) -> SteeringSpec:
    """``spec`` (one SAE intervention, conditional or adaptive) steering the mean-difference direction."""
    spec = spec.validate()
    if len(spec.interventions) != 1 or spec.interventions[0].vector is not None:
        raise SaedetoxError("sae-gated-meandiff gates with one SAE intervention (an SAE and its latents).")
    iv = spec.interventions[0]
    if iv.mode not in MODES:
        raise SaedetoxError(f"sae-gated-meandiff has modes {', '.join(MODES)}, not '{iv.mode}' (constant is meandiff).")
    sae = Resolver(lm).sae(iv.sae)  # type: ignore[arg-type]
    hook = iv.hook or sae.hook_name
    direction = cached(data, ("meandiff", id(lm.model), hook), lambda: meandiff_direction(lm, hook, data))
    out = replace(iv, sae=sae, hook=hook, vector=direction.tolist(), label=f"sae-gated-meandiff-{iv.mode}")
    return SteeringSpec([out]).validate()


def gated_meandiff_method(lm: LoadedModel, spec: SteeringSpec, data: ContrastData) -> Method:
    """``sae-gated-meandiff``: :func:`gated_meandiff_spec` attached while the method is active."""
    return steering_method(lm, gated_meandiff_spec(lm, spec, data), "sae-gated-meandiff")
