"""How continuations are sampled (:class:`SamplingConfig`) and what one is (:class:`Sample`): shared by the backends."""

from __future__ import annotations

import math
from dataclasses import dataclass

from saedetox.errors import SaedetoxError
from saedetox.eval.sampler.backends import HF, SAMPLERS, backend_of


@dataclass
class SamplingConfig:
    n_samples: int = 25
    max_new_tokens: int = 20
    top_p: float = 0.9
    temperature: float = 1.0
    do_sample: bool = True
    seed: int = 0
    batch_size: int = 64  # sequences (prompts × samples) per generate call
    prepend_bos: bool = True
    use_cache: bool = True
    sampler: str = SAMPLERS[HF]
    chat: bool = False  # each prompt wrapped in the tokenizer's chat template (saedetox.model.chat)

    def validate(self) -> SamplingConfig:
        if self.n_samples < 1 or self.max_new_tokens < 1 or self.batch_size < 1:
            raise SaedetoxError("n_samples, max_new_tokens and batch_size must be at least 1.")
        if not 0 < self.top_p <= 1:
            raise SaedetoxError(f"top_p must be in (0, 1], got {self.top_p}.")
        if not 0 < self.temperature < math.inf:
            raise SaedetoxError(f"temperature must be a positive finite number, got {self.temperature}.")
        if backend_of(self.sampler) is None:
            raise SaedetoxError(
                f"Unknown sampler '{self.sampler}': this saedetox samples with {' or '.join(SAMPLERS.values())}."
            )
        return self

    @property
    def backend(self) -> str:
        """The backend that samples with this config's sampler (``hf`` or ``vllm``)."""
        return backend_of(self.sampler) or HF

    @property
    def prompts_per_batch(self) -> int:
        return max(1, self.batch_size // self.n_samples)


@dataclass
class Sample:
    """One continuation of one prompt."""

    prompt_index: int
    sample_index: int
    text: str
    token_ids: list[int]
