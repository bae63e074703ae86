"""Methods by name: :func:`register_method` declares one, :func:`build_method` builds any run's method.

Each method declares what it needs (``contrast``: the toxic/clean texts; ``spec``: a steering
spec, i.e. an SAE and its latents), the steering modes it runs in, whether it takes push levels
(a push curve) and a strength of its own (tier/strength), which of its modes ``saedetox export``
folds into weights, and its defaults. The command line, sweeps, reports and the Python API read
these declarations; none of them names a method. The built-in methods are registered in
:mod:`saedetox.methods.builtin`; a new one needs only::

    @register_method("toy", summary="adds a fixed random vector")
    def toy(lm, spec=None, **options):
        return Method(name="toy", context=...)

This module imports nothing heavy (``saedetox --help`` lists the methods at once).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from saedetox.errors import SaedetoxError

if TYPE_CHECKING:
    from saedetox.methods.base import Method
    from saedetox.model.load import LoadedModel
    from saedetox.steering.spec import SteeringSpec
    from saedetox.steering.steerer import Steerer

Need = Literal["contrast", "spec"]
#: every option a builder may be given (each builder takes the ones it uses and ignores the rest)
OPTIONS = ("hook", "tier", "strength", "data", "data_dir", "prefix", "mode", "push", "pooling", "train_judge")
#: the method of a run with no steering, and of a run given steering options (an SAE and its latents)
UNSTEERED, STEERED = "none", "sae"
#: training judges in order of preference: a method that learns from a judge's labels gets the first one the
#: run does not evaluate with, unless one is named (``train_judge``)
TRAIN_JUDGES = ("profanity", "probe")


@dataclass(frozen=True)
class MethodInfo:
    """What one method is: how to build it and what it needs and supports."""

    name: str
    #: ``build(lm, spec=None, **options) -> Method`` (options: :data:`OPTIONS`)
    build: Callable[..., Method]
    summary: str = ""
    needs: frozenset[str] = frozenset()
    #: steering modes it runs in (the first is its default); () for a method without modes
    modes: tuple[str, ...] = ()
    #: whether it takes push levels (targets of the effective push: a push curve)
    push: bool = False
    #: whether ``tier`` / ``strength`` set how hard it acts (its own strength, not an SAE intervention's)
    strength: bool = False
    #: whether its tiers may be fractions of the median residual norm (else only low / medium / high)
    numeric_tiers: bool = True
    #: whether it acts at a residual hook (``hook``; default: the SAE's own, else the middle layer)
    hook: bool = False
    #: whether it accepts steering options at all (an SAE, latents or a spec)
    steering: bool = True
    #: ``export(lm, out, spec=None, **options) -> Path``: write it into a plain HF checkpoint, or None
    export: Callable[..., Any] | None = None
    #: the modes ``export`` folds into weights (a method without modes: ())
    export_modes: tuple[str, ...] = ()
    #: whether it learns from a training judge's labels (option ``train_judge``; :func:`train_judge_for`)
    learns_from_judge: bool = False
    #: "sae", "baseline" or "none": how reports group it
    family: str = "baseline"
    #: whether constant-mode runs carry the mode in their sweep curve name (``sae-constant-…``)
    mode_in_name: bool = False
    defaults: Mapping[str, Any] = field(default_factory=dict)

    @property
    def curve(self) -> bool:
        """Whether its runs form a strength curve (a strength, push levels or modes), not a single point."""
        return self.strength or self.push or bool(self.modes)


_METHODS: dict[str, MethodInfo] = {}


def register_method(name: str, **declared: Any) -> Callable[[Callable[..., Method]], Callable[..., Method]]:
    """Decorator: register ``build`` as the method ``name`` with the :class:`MethodInfo` fields in ``declared``."""

    def add(build: Callable[..., Method]) -> Callable[..., Method]:
        key = name.strip().lower()
        if not key or key in _METHODS:
            raise SaedetoxError(f"A method named '{name}' is already registered (or the name is empty).")
        needs = frozenset(declared.pop("needs", ()))
        unknown = needs - {"contrast", "spec"}
        if unknown:
            raise SaedetoxError(f"Method '{name}' needs {', '.join(sorted(unknown))}: known needs are contrast, spec.")
        _METHODS[key] = MethodInfo(name=key, build=build, needs=needs, **declared)
        return build

    return add


def unregister_method(name: str) -> None:
    """Remove the method ``name`` (a test's own method, say); unknown names are ignored."""
    _METHODS.pop(name.strip().lower(), None)


def _builtins() -> None:
    importlib.import_module("saedetox.methods.builtin")  # registers the built-in methods on first use


def find_method(name: Any) -> MethodInfo | None:
    """The method called ``name``, or None (reports fall back for methods nobody registered)."""
    _builtins()
    return _METHODS.get(name.strip().lower()) if isinstance(name, str) else None


def get_method(name: str) -> MethodInfo:
    """The method called ``name``; an unknown name is one clear line naming the known ones."""
    info = find_method(name)
    if info is None:
        raise SaedetoxError(f"Unknown method '{name}': use one of {', '.join(method_names())}.")
    return info


def method_names() -> tuple[str, ...]:
    """Every registered method, in registration order."""
    _builtins()
    return tuple(_METHODS)


def exportable_methods() -> tuple[str, ...]:
    """The methods ``saedetox export`` can fold into a checkpoint."""
    return tuple(n for n in method_names() if _METHODS[n].export is not None)


def export_modes() -> tuple[str, ...]:
    """Every steering mode some exportable method folds into weights."""
    return tuple(dict.fromkeys(m for n in exportable_methods() for m in _METHODS[n].export_modes))


def default_method(steering: bool) -> str:
    """The method a run gets when none is named: steering options imply :data:`STEERED`."""
    return STEERED if steering else UNSTEERED


def check_options(name: str, **options: Any) -> MethodInfo:
    """The method ``name``, once ``options`` are ones it takes (checked before any model is loaded)."""
    info = get_method(name)
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise SaedetoxError(f"Method '{info.name}' has no option {', '.join(unknown)} (options: {', '.join(OPTIONS)}).")
    if options.get("push") is not None and not info.push:
        raise SaedetoxError(f"Method '{info.name}' takes no push level ({', '.join(_with('push'))} do).")
    if options.get("train_judge") is not None and not info.learns_from_judge:
        raise SaedetoxError(
            f"Method '{info.name}' learns from no judge's labels: a training judge is for "
            f"{', '.join(_with('learns_from_judge'))}."
        )
    mode = options.get("mode")
    if mode is not None and mode not in (info.modes or ("constant",)):
        if not info.modes:
            raise SaedetoxError(f"Method '{info.name}' takes no steering mode ({', '.join(_with('modes'))} do).")
        raise SaedetoxError(f"Method '{info.name}' has modes {', '.join(info.modes)}, not '{mode}'.")
    return info


def train_judge_for(name: str | None, eval_judges: Sequence[str] = ()) -> str:
    """The training judge of a method that learns from one: ``name`` (a registered judge), or by default the first
    of :data:`TRAIN_JUDGES` that is not among ``eval_judges`` (the first when all are)."""
    from saedetox.judges.registry import available_judges  # deferred: judges load torch

    if name is None:
        return next((j for j in TRAIN_JUDGES if j not in eval_judges), TRAIN_JUDGES[0])
    key = name.strip().lower() if isinstance(name, str) else name
    if key not in available_judges():
        raise SaedetoxError(f"Unknown training judge {name!r}: choose from {', '.join(available_judges())}.")
    return key


def build_method(lm: LoadedModel, name: str, spec: SteeringSpec | None = None, **options: Any) -> Method:
    """The method called ``name`` (:func:`method_names`); ``spec`` is the steering of methods that need one."""
    from saedetox.model.load import as_loaded_model  # deferred: this module stays light (see the docstring)

    info = check_options(name, **options)
    return info.build(as_loaded_model(lm), spec, **{**info.defaults, **options})


def _with(flag: str) -> list[str]:
    return [n for n, m in _METHODS.items() if getattr(m, flag)]


def build_baseline(lm: LoadedModel, name: str, spec: SteeringSpec | None = None, **options: Any) -> Method:
    """A baseline by name: :func:`build_method` for a method of the ``baseline`` family."""
    if get_method(name).family != "baseline":
        raise SaedetoxError(f"'{name}' is not a baseline: use one of {', '.join(_family('baseline'))}.")
    return build_method(lm, name, spec, **options)


def _family(family: str) -> list[str]:
    return [n for n in method_names() if _METHODS[n].family == family]


def as_method(lm: LoadedModel, method: Method | SteeringSpec | Steerer | str | None) -> Method:
    """What ``evaluate`` runs: a :class:`Method`, a steering spec or Steerer (method ``sae``), a method name
    (with its defaults), or ``None`` (the unsteered model)."""
    from saedetox.methods.base import Method  # deferred: this module stays light (see the docstring)
    from saedetox.steering.spec import SteeringSpec
    from saedetox.steering.steerer import Steerer

    if method is None:
        return build_method(lm, UNSTEERED)
    if isinstance(method, Method):
        return method
    if isinstance(method, Steerer):
        return build_method(lm, STEERED, method.spec)
    if isinstance(method, SteeringSpec):
        return build_method(lm, STEERED, method)
    if isinstance(method, str):
        return build_method(lm, method)
    raise SaedetoxError(f"method must be a Method, a SteeringSpec, a method name or None, got {type(method).__name__}.")
