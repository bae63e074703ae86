"""What a run does to the model: :class:`Method` (the methods by name: :mod:`saedetox.methods.registry`)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from saedetox.steering.steerer import Steerer


@dataclass
class Method:
    """What a run does to the model: hooks or weight edits (``context``) and/or a prompt prefix."""

    name: str = "none"
    context: Callable[[], AbstractContextManager[Any]] = nullcontext
    prefix: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    #: run statistics the method gathered while active (e.g. a Steerer's effective push), or None
    stats: Callable[[], dict[str, Any]] | None = None
    #: the Steerer behind a steering method (push calibration reaches its strengths through it)
    steerer: Steerer | None = None
    #: where push calibration starts: α per intervention that needs it (None: the closed form). Not part
    #: of the run's settings (the calibrated α is): a sweep starts a curve's next level from the last one's α
    calibration_start: list[float] | None = None
    #: the method written into the weights while active (a weight edit, or its hooks folded into weights):
    #: how a backend that loads weights from a folder (vLLM) runs it. None: no weight form
    weights: Callable[[], AbstractContextManager[Any]] | None = None
    #: judges whose labels the method learnt from (``evaluate`` warns when one of them also scores the run)
    judges: tuple[str, ...] = ()
    #: what a backend that samples request by request (vLLM) sends with every request (``SamplingParams.extra_args``,
    #: acted on by a logits processor in its engine): how a decoding-time method runs there. None: no such form
    request_args: Callable[[], dict[str, Any]] | None = None
    #: ``replay(prompt_ids, continuation_ids, max_new_tokens)``: measures ``stats`` teacher-forced on stored
    #: continuations, for a backend whose decoding the method's hooks did not see (vLLM). None: nothing to measure
    replay: Callable[[list[list[int]], list[list[list[int]]], int], None] | None = None
