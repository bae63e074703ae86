"""The built-in methods, registered by name: none, sae, sae-targeted, sae-gated-meandiff, and the baselines
prompt, meandiff, aura, surgery, rectification.

Each builder imports its method's module when it runs, so the registry (and ``saedetox --help``)
stays light; :mod:`saedetox.methods.registry` describes the declarations.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from saedetox.errors import SaedetoxError
from saedetox.methods.registry import register_method, train_judge_for
from saedetox.steering.names import GATED_VECTOR_MODES, MODES, VECTOR_MODES

if TYPE_CHECKING:
    from saedetox.methods.base import Method
    from saedetox.methods.contrast import ContrastData
    from saedetox.model.load import LoadedModel
    from saedetox.steering.spec import SteeringSpec


@register_method("none", summary="the unsteered model", family="none", steering=False)
def _none(lm: LoadedModel, spec: SteeringSpec | None = None, **_: Any) -> Method:
    from saedetox.methods.base import Method

    if spec is not None:
        raise SaedetoxError("Method 'none' takes no steering spec; steering is method 'sae'.")
    return Method()


def _export_spec(lm: LoadedModel, out: str | Path, spec: SteeringSpec | None = None, **options: Any) -> Path:
    from saedetox.steering.export import export

    return export(lm, spec, out, dtype=options.get("dtype"), overwrite=options.get("overwrite", False))


@register_method(
    "sae",
    summary="steer SAE latents (the steering options or --spec)",
    needs=("spec",),
    modes=MODES,
    push=True,
    family="sae",
    mode_in_name=True,
    export=_export_spec,
    export_modes=("constant",),
)
def _sae(lm: LoadedModel, spec: SteeringSpec | None = None, **_: Any) -> Method:
    from saedetox.methods.sae import steering_method

    if spec is None:
        raise SaedetoxError("Method 'sae' needs a steering spec (an SAE and its latents).")
    return steering_method(lm, spec)


@register_method("prompt", summary="a polite instruction prefix")
def _prompt(lm: LoadedModel, spec: SteeringSpec | None = None, prefix: str | None = None, **_: Any) -> Method:
    from saedetox.methods.prompt import POLITE_PREFIX, prompt_method

    return prompt_method(POLITE_PREFIX if prefix is None else prefix)


def _hook(lm: LoadedModel, spec: SteeringSpec | None, hook: str | None) -> str:
    """The hook a baseline acts at: given, else the spec's (the SAE's), else the middle layer's residual."""
    if hook is None and spec is not None:
        from saedetox.steering.steerer import Steerer

        hook = Steerer(lm, spec).resolved[0].hook
    return hook or f"blocks.{lm.n_layers // 2}.hook_resid_pre"


def _data(data: ContrastData | None, data_dir: str | None) -> ContrastData:
    from saedetox.methods.contrast import default_contrast

    return data or default_contrast(data_dir)


def _export_baseline(name: str) -> Any:
    def run(lm: LoadedModel, out: str | Path, spec: SteeringSpec | None = None, **options: Any) -> Path:
        from saedetox.methods.export import export_baseline

        hook = options.get("hook")
        if name == "meandiff":
            hook = _hook(lm, spec, hook)
        keep = ("tier", "strength", "data", "data_dir", "overwrite", "dtype")
        return export_baseline(lm, name, out, hook=hook, **{k: options[k] for k in keep if k in options})

    return run


@register_method(
    "meandiff",
    summary="mean-difference steering (toxic minus clean mean activation)",
    needs=("contrast",),
    modes=VECTOR_MODES,
    push=True,
    strength=True,
    hook=True,
    export=_export_baseline("meandiff"),
    export_modes=("constant",),
)
def _meandiff(
    lm: LoadedModel,
    spec: SteeringSpec | None = None,
    *,
    hook: str | None = None,
    tier: str | float | None = "medium",
    strength: float | None = None,
    data: ContrastData | None = None,
    data_dir: str | None = None,
    mode: str | None = None,
    push: float | None = None,
    pooling: str | None = None,
    **_: Any,
) -> Method:
    from saedetox.methods.meandiff import meandiff_method

    return meandiff_method(
        lm,
        _hook(lm, spec, hook),
        _data(data, data_dir),
        tier,
        strength,
        mode=mode or "constant",
        push=push,
        pooling=pooling or "max",
    )


@register_method("aura", summary="AurA: dampen expert neurons by their toxicity AUROC", needs=("contrast",))
def _aura(
    lm: LoadedModel,
    spec: SteeringSpec | None = None,
    data: ContrastData | None = None,
    data_dir: str | None = None,
    **_: Any,
) -> Method:
    from saedetox.methods.aura import aura_method

    return aura_method(lm, _data(data, data_dir))


@register_method(
    "surgery",
    summary="Model Surgery: edit the rows that read a toxicity probe",
    needs=("contrast",),
    strength=True,
    numeric_tiers=False,
    export=_export_baseline("surgery"),
)
def _surgery(
    lm: LoadedModel,
    spec: SteeringSpec | None = None,
    tier: str | float | None = "medium",
    strength: float | None = None,
    data: ContrastData | None = None,
    data_dir: str | None = None,
    **_: Any,
) -> Method:
    from saedetox.methods.surgery import surgery_method

    return surgery_method(lm, _data(data, data_dir), tier, strength)  # probes the final layer: no hook


def _export_targeted(lm: LoadedModel, out: str | Path, spec: SteeringSpec | None = None, **options: Any) -> Path:
    from saedetox.methods.targeted import RULE, targeted_spec
    from saedetox.steering.export import export

    if spec is None:
        raise SaedetoxError("Method 'sae-targeted' needs a steering spec (an SAE and its latents).")
    steered, solve = targeted_spec(lm, spec)
    origin = {"method": "sae-targeted", "rule": RULE, **solve.record()}
    dtype, overwrite = options.get("dtype"), options.get("overwrite", False)
    return export(lm, steered, out, dtype=dtype, overwrite=overwrite, vector_provenance=origin)


@register_method(
    "sae-targeted",
    summary="a direction solved to lower the SAE latents and leave clean text's latents alone",
    needs=("spec",),
    modes=GATED_VECTOR_MODES,
    push=True,
    family="sae",
    mode_in_name=True,
    export=_export_targeted,
    export_modes=("constant",),
)
def _sae_targeted(lm: LoadedModel, spec: SteeringSpec | None = None, **_: Any) -> Method:
    from saedetox.methods.targeted import targeted_method

    if spec is None:
        raise SaedetoxError("Method 'sae-targeted' needs a steering spec (an SAE and its latents).")
    return targeted_method(lm, spec)


@register_method(
    "sae-gated-meandiff",
    summary="mean-difference steering where the SAE's gate or detector says",
    needs=("contrast", "spec"),
    modes=("conditional", "adaptive"),
    push=True,
    family="sae",
    mode_in_name=True,
)
def _sae_gated_meandiff(
    lm: LoadedModel,
    spec: SteeringSpec | None = None,
    data: ContrastData | None = None,
    data_dir: str | None = None,
    **_: Any,
) -> Method:
    from saedetox.methods.gated import gated_meandiff_method

    if spec is None:
        raise SaedetoxError("Method 'sae-gated-meandiff' needs a steering spec (an SAE and its latents).")
    return gated_meandiff_method(lm, spec, _data(data, data_dir))


@register_method(
    "rectification",
    summary="Systematic Rectification: cap token probabilities by a value model's dead-end estimate",
    strength=True,
    numeric_tiers=False,
    steering=False,
    learns_from_judge=True,
)
def _rectification(
    lm: LoadedModel,
    spec: SteeringSpec | None = None,
    tier: str | float | None = "medium",
    strength: float | None = None,
    data_dir: str | None = None,
    train_judge: str | None = None,
    **_: Any,
) -> Method:
    from saedetox.methods.rectification import rectification_method
    from saedetox.methods.value_training import ValueTrainConfig

    if spec is not None:
        raise SaedetoxError("Method 'rectification' takes no steering spec: it acts on the sampling distribution.")
    train = ValueTrainConfig(judge=train_judge_for(train_judge)) if train_judge else None
    return rectification_method(lm, tier, strength, train=train, data_dir=data_dir)
