"""Options shared by the commands, declared once: model loading, and the ten steering options.

A command with a ``steering: SteeringOptions`` parameter, decorated with
:func:`~saedetox.cli.fields.with_options`, gets the steering options (``--sae --features --mode
--strength --tier --hook --threshold --clamp-value --positions --spec``) in its place and is handed
one :class:`SteeringOptions`; :func:`build_spec` turns that into a :class:`~saedetox.steering.spec.SteeringSpec`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

import typer

from saedetox.errors import SaedetoxError
from saedetox.steering.names import MODES, POSITIONS

if TYPE_CHECKING:  # the CLI imports the pipeline only when a command runs (see saedetox.cli.app)
    from saedetox.methods.base import Method
    from saedetox.model.load import LoadedModel
    from saedetox.steering.spec import SteeringSpec
    from saedetox.steering.steerer import Steerer

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="HF hub name, local model dir, or 'reference'.")]
DtypeOpt = Annotated[str, typer.Option("--dtype", help="auto | float32 | float16 | bfloat16.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto | cpu | cuda[:N].")]
HOOK_HELP = "TL hook name (default: the SAE's own)."
SAE_HELP = "SAE: release/sae_id (SAE-Lens registry), local SAE-Lens dir, or 'reference'."
HookOpt = Annotated[str | None, typer.Option("--hook", help=HOOK_HELP)]
DataDirOpt = Annotated[
    str | None, typer.Option("--data-dir", help="Dataset folder (default: $SAEDETOX_DATA, ../shared/data).")
]
SaeOpt = Annotated[str | None, typer.Option("--sae", help=SAE_HELP)]


@dataclass(frozen=True)
class SteeringOptions:
    """The steering options of one command line: a command's ``steering: SteeringOptions`` parameter
    becomes these ten options (:func:`~saedetox.cli.fields.with_options`)."""

    sae: str | None = field(default=None, metadata={"help": SAE_HELP})
    features: str | None = field(
        default=None, metadata={"help": "Latents: 3,17, Neuronpedia ids/URLs, release/sae_id:index, or features.json."}
    )
    mode: str = field(default="constant", metadata={"help": "How the latents are steered.", "choices": MODES})
    strength: float | None = field(default=None, metadata={"help": "Raw strength alpha."})
    tier: str | None = field(
        default=None, metadata={"help": "low | medium | high, or a fraction of the median residual norm."}
    )
    hook: str | None = field(default=None, metadata={"help": HOOK_HELP})
    threshold: str = field(
        default="auto", metadata={"help": "Gate tau (conditional/token): a number, or auto = features.json gates."}
    )
    clamp_value: float = field(default=0.0, metadata={"help": "Value c for clamp mode."})
    positions: str = field(
        default="all",
        metadata={"help": "Where steering acts: every position, or generated tokens only.", "choices": POSITIONS},
    )
    spec: str | None = field(default=None, metadata={"help": "A steering spec file (YAML/JSON) instead of the flags."})


def build_spec(opts: SteeringOptions, required: bool = True) -> SteeringSpec | None:
    """The steering spec the options describe: the ``--spec`` file, or what ``steering_spec`` makes of the flags."""
    from saedetox.discover.features import parse_features  # deferred: see saedetox.cli.app
    from saedetox.experiments.compatibility import check_features_file
    from saedetox.steering.spec import SteeringSpec
    from saedetox.steering.steer import steering_spec

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
    parse_features(opts.features, opts.sae)  # indices, ids (another SAE's refused) or a readable features file
    if _is_file(opts.features):
        check_features_file(opts.features, opts.sae)  # recorded for this SAE? (before any model is loaded)
    if str(opts.threshold).strip().lower() != "auto":
        try:
            float(opts.threshold)
        except ValueError:
            raise SaedetoxError(f"--threshold must be a number or 'auto', got '{opts.threshold}'.") from None
    return steering_spec(
        opts.features,
        sae=opts.sae,
        mode=opts.mode,  # type: ignore[arg-type]
        tier=opts.tier,  # type: ignore[arg-type]
        strength=opts.strength,
        hook=opts.hook,
        positions=opts.positions,  # type: ignore[arg-type]
        threshold=opts.threshold,
        clamp_value=opts.clamp_value,
    )


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
