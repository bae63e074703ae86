"""Judges by name: :func:`get_judge` builds one with its options, :func:`available_judges` lists them."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from saedetox.errors import SaedetoxError
from saedetox.judges.base import Judge
from saedetox.judges.detoxify import DetoxifyJudge
from saedetox.judges.perspective import PerspectiveJudge
from saedetox.judges.probe import ProbeJudge
from saedetox.judges.profanity import ProfanityJudge

OFFLINE_JUDGES = ("profanity", "probe")

_FACTORIES: dict[str, Callable[..., Judge]] = {
    "profanity": ProfanityJudge,
    "probe": ProbeJudge,
    "detoxify": lambda **kw: DetoxifyJudge("original", **kw),
    "detoxify-original": lambda **kw: DetoxifyJudge("original", **kw),
    "detoxify-unbiased": lambda **kw: DetoxifyJudge("unbiased", **kw),
    "perspective": PerspectiveJudge,
}
_CLASSES = {"profanity": ProfanityJudge, "probe": ProbeJudge, "perspective": PerspectiveJudge}


def available_judges() -> list[str]:
    """Every name :func:`get_judge` accepts (the non-offline ones may still need a package, key or network)."""
    return list(_FACTORIES)


def get_judge(name: str, **options: Any) -> Judge:
    """Build the judge ``name`` with its ``options`` (e.g. ``path=`` for probe, ``api_key=`` for perspective)."""
    key = name.strip().lower()
    if key not in _FACTORIES:
        raise SaedetoxError(f"Unknown judge '{name}': choose from {', '.join(_FACTORIES)}.")
    allowed = set(inspect.signature(_CLASSES.get(key, DetoxifyJudge)).parameters) - {"name", "model_type"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise SaedetoxError(f"Judge '{key}' has no option {', '.join(unknown)} (has: {', '.join(sorted(allowed))}).")
    return _FACTORIES[key](name=key, **options)
