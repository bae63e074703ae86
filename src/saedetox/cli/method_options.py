"""How ``evaluate`` and ``generate`` turn ``--method`` and the steering options into a method's build options.

A method with a steering spec of its own (``sae``, ``sae-targeted``, ...) reads ``--tier`` /
``--strength`` into its spec; a baseline with a strength of its own reads them as its own strength;
``--hook``, ``--mode`` and ``--train-judge`` reach the methods that declare them
(:class:`saedetox.methods.registry.MethodInfo`). Everything here is checked before a model is loaded.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Annotated, Any

import typer

from saedetox.cli.options import SteeringOptions, build_spec
from saedetox.errors import SaedetoxError
from saedetox.methods.registry import (  # light: names and declarations
    MethodInfo,
    check_options,
    default_method,
    get_method,
    train_judge_for,
)

if TYPE_CHECKING:
    from saedetox.steering.spec import SteeringSpec

TrainJudgeOpt = Annotated[
    str | None,
    typer.Option(
        "--train-judge",
        help="The judge whose labels a method that learns from one (rectification) trains on; default: the "
        "first of profanity, probe that does not score the run.",
    ),
]


def method_setup(
    method: str | None,
    steering: SteeringOptions,
    data_dir: str | None,
    train_judge: str | None = None,
    eval_judges: tuple[str, ...] = (),
) -> tuple[MethodInfo, SteeringOptions, SteeringSpec | None, dict[str, Any]]:
    """``(method, the steering options its spec reads, that spec or None, its build options)``."""
    from saedetox.steering.spec import parse_tier  # deferred: see saedetox.cli.app

    steered = bool(steering.sae or steering.spec)
    info = get_method(method or default_method(steered))
    if not info.steering and steered:
        raise SaedetoxError(
            f"--method {info.name} takes no steering options (--sae, --features, --spec); "
            "drop them or use --method sae."
        )
    own_spec = "spec" in info.needs
    # a baseline's --tier / --strength set the baseline's own strength, not an SAE intervention's
    own = replace(
        steering,
        sae=steering.sae or None,
        strength=steering.strength if own_spec else None,
        tier=steering.tier if own_spec else None,
    )
    spec = build_spec(own, required=False)
    options: dict[str, Any] = {"data_dir": data_dir}
    if info.strength:
        if steering.tier is not None:
            parse_tier(steering.tier)
        tier, strength = steering.tier, steering.strength
        options.update(tier=tier if (tier or strength is not None) else "medium", strength=strength)
    if info.hook:
        options["hook"] = steering.hook
    if info.modes and not own_spec:
        options["mode"] = steering.mode
    if train_judge is not None:
        options["train_judge"] = train_judge
    check_options(info.name, **options)
    if info.learns_from_judge:
        options["train_judge"] = train_judge_for(train_judge, eval_judges)
    return info, own, spec, options
