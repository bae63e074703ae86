"""Methods by name: :func:`build_method` for any run, :func:`build_baseline` for one baseline."""

from __future__ import annotations

from typing import Any

from saedetox.errors import SaedetoxError
from saedetox.methods.aura import aura_method
from saedetox.methods.base import BASELINES, METHOD_NAMES, Method
from saedetox.methods.contrast import ContrastData, default_contrast
from saedetox.methods.meandiff import meandiff_method
from saedetox.methods.prompt import POLITE_PREFIX, prompt_method
from saedetox.methods.sae import steering_method
from saedetox.methods.surgery import surgery_method
from saedetox.model.load import LoadedModel, as_loaded_model
from saedetox.steering.spec import SteeringSpec
from saedetox.steering.steerer import Steerer


def build_method(lm: LoadedModel, name: str, spec: SteeringSpec | None = None, **options: Any) -> Method:
    """The method called ``name`` (:data:`METHOD_NAMES`); ``spec`` is the ``sae`` method's steering."""
    lm = as_loaded_model(lm)
    if name == "none":
        if spec is not None:
            raise SaedetoxError("Method 'none' takes no steering spec; steering is method 'sae'.")
        return Method()
    if name == "sae":
        if spec is None:
            raise SaedetoxError("Method 'sae' needs a steering spec (an SAE and its latents).")
        return steering_method(lm, spec)
    if name in BASELINES:
        return build_baseline(lm, name, spec=spec, **options)
    raise SaedetoxError(f"Unknown method '{name}': use one of {', '.join(METHOD_NAMES)}.")


def as_method(lm: LoadedModel, method: Method | SteeringSpec | Steerer | str | None) -> Method:
    """What ``evaluate`` runs: a :class:`Method`, a steering spec or Steerer (method ``sae``), a method name
    (baselines with their defaults), or ``None`` (the unsteered model)."""
    if method is None:
        return Method()
    if isinstance(method, Method):
        return method
    if isinstance(method, Steerer):
        return steering_method(lm, method.spec)
    if isinstance(method, SteeringSpec):
        return steering_method(lm, method)
    if isinstance(method, str):
        return build_method(lm, method)
    raise SaedetoxError(f"method must be a Method, a SteeringSpec, a method name or None, got {type(method).__name__}.")


def build_baseline(
    lm: LoadedModel,
    name: str,
    spec: SteeringSpec | None = None,
    hook: str | None = None,
    tier: str | float | None = "medium",
    strength: float | None = None,
    data: ContrastData | None = None,
    data_dir: str | None = None,
    prefix: str = POLITE_PREFIX,
    mode: str = "constant",
    push: float | None = None,
    pooling: str = "max",
) -> Method:
    """A :class:`Method` for one baseline. ``hook`` defaults to the spec's hook (the SAE's); ``pooling``:
    meandiff-adaptive's detector pooling."""
    if name == "prompt":
        return prompt_method(prefix)
    if hook is None and spec is not None:
        hook = Steerer(lm, spec).resolved[0].hook
    if hook is None:
        hook = f"blocks.{lm.n_layers // 2}.hook_resid_pre"
    data = data or default_contrast(data_dir)
    if name == "meandiff":
        return meandiff_method(lm, hook, data, tier, strength, mode=mode, push=push, pooling=pooling)
    if push is not None or mode != "constant":
        raise SaedetoxError(f"Baseline '{name}' takes no steering mode or push level (meandiff does).")
    if name == "aura":
        return aura_method(lm, data)
    if name == "surgery":
        return surgery_method(lm, data, tier, strength)  # probes the final layer: no hook
    raise SaedetoxError(f"Unknown baseline '{name}': use prompt, meandiff, aura or surgery.")
