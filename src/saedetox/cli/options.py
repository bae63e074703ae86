"""Options shared by the commands, declared once: model loading, and the ten steering options.

:func:`steering_options` adds the steering options (``--sae --features --mode --strength --tier
--hook --threshold --clamp-value --positions --spec``) to a command in place of its
``steering: SteeringOptions`` parameter and hands the command one :class:`SteeringOptions`;
:func:`build_spec` turns that into a :class:`~saedetox.steering.spec.SteeringSpec`.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Annotated, Any

import typer

from saedetox.errors import SaedetoxError

if TYPE_CHECKING:  # the CLI imports the pipeline only when a command runs (see saedetox.cli.app)
    from saedetox.methods.base import Method
    from saedetox.model.load import LoadedModel
    from saedetox.steering.spec import SteeringSpec
    from saedetox.steering.steerer import Steerer

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="HF hub name, local model dir, or 'reference'.")]
DtypeOpt = Annotated[str, typer.Option("--dtype", help="auto | float32 | float16 | bfloat16.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto | cpu | cuda[:N].")]
HookOpt = Annotated[str | None, typer.Option("--hook", help="TL hook name (default: the SAE's own).")]
DataDirOpt = Annotated[str | None, typer.Option("--data-dir")]
SaeOpt = Annotated[
    str | None,
    typer.Option("--sae", help="SAE: release/sae_id (SAE-Lens registry), local SAE-Lens dir, or 'reference'."),
]


@dataclass(frozen=True)
class SteeringOptions:
    """The steering options of one command line (see :func:`steering_options`)."""

    sae: SaeOpt = None
    features: Annotated[
        str | None,
        typer.Option("--features", help="Latents: 3,17, Neuronpedia ids/URLs, release/sae_id:index, or features.json."),
    ] = None
    mode: Annotated[str, typer.Option("--mode", help="constant | conditional | token | clamp | adaptive.")] = "constant"
    strength: Annotated[float | None, typer.Option("--strength", help="Raw strength alpha.")] = None
    tier: Annotated[
        str | None, typer.Option("--tier", help="low | medium | high, or a fraction of the median residual norm.")
    ] = None
    hook: HookOpt = None
    threshold: Annotated[
        str, typer.Option("--threshold", help="Gate tau (conditional/token): a number, or auto = features.json gates.")
    ] = "auto"
    clamp_value: Annotated[float, typer.Option("--clamp-value", help="Value c for clamp mode.")] = 0.0
    positions: Annotated[str, typer.Option("--positions", help="all | generated.")] = "all"
    spec: Annotated[
        str | None, typer.Option("--spec", help="A steering spec file (YAML/JSON) instead of the flags.")
    ] = None


_STEERING_FIELDS = tuple(f.name for f in fields(SteeringOptions))
_STEERING_HINTS = typing.get_type_hints(SteeringOptions, include_extras=True)
_STEERING_PARAMS = [
    inspect.Parameter(
        f.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=f.default, annotation=_STEERING_HINTS[f.name]
    )
    for f in fields(SteeringOptions)
]


def steering_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Put the ten steering options where ``command`` has its ``steering`` parameter; pass them as one object."""
    hints = typing.get_type_hints(command, include_extras=True)
    params: list[inspect.Parameter] = []
    for p in inspect.signature(command).parameters.values():
        if p.name == "steering":
            params += _STEERING_PARAMS
        else:
            params.append(p.replace(annotation=hints.get(p.name, p.annotation)))

    @functools.wraps(command)
    def run(**kwargs: Any) -> Any:
        steering = SteeringOptions(**{name: kwargs.pop(name) for name in _STEERING_FIELDS})
        return command(steering=steering, **kwargs)

    run.__signature__ = inspect.Signature(params, return_annotation=hints.get("return", None))  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in params}
    return run


def build_spec(opts: SteeringOptions, required: bool = True) -> SteeringSpec | None:
    """The steering spec the options describe (``--spec`` file, or one intervention from the flags)."""
    from saedetox.discover.features import parse_features  # deferred: see saedetox.cli.app
    from saedetox.experiments.compatibility import check_features_file
    from saedetox.steering.spec import Intervention, SteeringSpec, default_detector, parse_threshold

    if opts.spec:
        return SteeringSpec.load(opts.spec)
    if opts.sae is None:
        if opts.features or opts.strength is not None or opts.tier:
            raise SaedetoxError("Steering options need --sae (or --spec).")
        if required:
            raise SaedetoxError("Give --sae and --features (or --spec) to steer.")
        return None
    if not opts.features:
        raise SaedetoxError("--sae needs --features (indices like 3,17 or a features.json file).")
    _refuse_ignored(opts)
    latents = parse_features(opts.features, opts.sae)  # ids naming another SAE are refused here
    if _is_file(opts.features):
        check_features_file(opts.features, opts.sae)  # recorded for this SAE? (before any model is loaded)
    if str(opts.threshold).strip().lower() != "auto":
        try:
            float(opts.threshold)
        except ValueError:
            raise SaedetoxError(f"--threshold must be a number or 'auto', got '{opts.threshold}'.") from None
    tau, taus = parse_threshold(opts.threshold, opts.features, opts.mode)
    iv = Intervention(
        sae=opts.sae,
        latents=latents,
        hook=opts.hook,
        mode=opts.mode,
        strength=opts.strength,
        tier=opts.tier,
        threshold=tau,
        thresholds=taus,
        clamp_value=opts.clamp_value,
        positions=opts.positions,
        detector=default_detector(opts.features) if opts.mode == "adaptive" else None,
    )
    return SteeringSpec([iv]).validate()


#: the steering options that only some modes read (option, its default, the modes that read it)
_MODE_ONLY = (("threshold", "auto", ("conditional", "token")), ("clamp_value", 0.0, ("clamp",)))


def _refuse_ignored(opts: SteeringOptions) -> None:
    """A --threshold or --clamp-value the chosen mode would silently ignore is refused."""
    from saedetox.steering.spec import MODES  # deferred: see saedetox.cli.app

    if opts.mode not in MODES:
        return  # the spec's own check names the unknown mode
    for name, default, modes in _MODE_ONLY:
        value = getattr(opts, name)
        given = str(value).strip().lower() != default if isinstance(default, str) else value != default
        if given and opts.mode not in modes:
            flag = "--" + name.replace("_", "-")
            raise SaedetoxError(
                f"{flag} is read only in {' and '.join(modes)} mode; mode '{opts.mode}' would ignore it "
                f"(drop {flag} or choose a mode that reads it)."
            )


def _is_file(value: str | None) -> bool:
    from saedetox.discover.features import features_file  # deferred: see saedetox.cli.app

    path = features_file(value)
    return path is not None and path.is_file()


def check_method_features(method: Method | Steerer, opts: SteeringOptions) -> None:
    """After the SAE is loaded: a features.json recorded for another SAE width is refused."""
    from saedetox.experiments.compatibility import check_features_against  # deferred: see saedetox.cli.app

    if opts.sae and _is_file(opts.features):
        check_features_against(method, str(opts.features), opts.sae)


def load_lm(model: str, dtype: str, device: str) -> LoadedModel:
    from saedetox.model.load import load_model  # deferred: see saedetox.cli.app
    from saedetox.progress import note

    note(f"loading model {model}")
    return load_model(model, dtype=dtype, device=device)
