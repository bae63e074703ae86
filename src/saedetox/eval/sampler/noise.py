"""Common random numbers: the noise a sampled batch uses depends only on (seed, batch, step, shape).

Every method that samples the same batch of prompts (unsteered, each steering mode, each
baseline) draws the same uniforms at every decode step, so paired differences between methods
measure the methods, not the luck of the draw. :class:`NoiseStream` re-seeds one generator per
step from a hash of ``(seed, batch, step)`` (NumPy's ``SeedSequence`` mixing), so the noise of
step t never depends on how many numbers earlier steps used, on which batches were skipped on
resume, or on the thread count.

Because the noise is the same for every method, a sweep draws it once: inside
:func:`reuse_noise` the exponential noise ``−log U`` the sampler uses is kept per ``(seed, batch,
step, shape)`` on the CPU (where drawing a batch's uniforms over the vocabulary costs as much as
the rest of the sampler) and handed to every later run as the same numbers, up to a byte budget.

The stream is device specific: a CPU generator (MT19937) and a CUDA one (Philox) give different,
equally valid numbers, so runs compare with each other only on the same kind of device.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

_MASK63 = (1 << 63) - 1
#: bytes of exponential noise :func:`reuse_noise` keeps by default (the demo's 36 runs need ~190 MB)
REUSE_BYTES = 512 << 20

_Key = tuple[int, int, int, tuple[int, ...], str]


class _Kept:
    """Exponential noise kept for reuse: first come, first kept, until the budget is spent."""

    def __init__(self, budget: int) -> None:
        self.budget, self.used, self.hits, self.misses = budget, 0, 0, 0
        self.store: dict[_Key, torch.Tensor] = {}


_KEPT: list[_Kept] = []  # the innermost active reuse_noise() scope last


@contextmanager
def reuse_noise(budget_bytes: int = REUSE_BYTES) -> Iterator[_Kept]:
    """Within this scope, CPU exponential noise is drawn once per ``(seed, batch, step, shape)`` and reused.

    The numbers are exactly those a fresh draw gives (the same generator, seed and operations);
    only the time to draw them is saved. Yields the store (``hits``/``misses`` count lookups).
    """
    kept = _Kept(int(budget_bytes))
    _KEPT.append(kept)
    try:
        yield kept
    finally:
        _KEPT.remove(kept)
        kept.store.clear()


def step_seed(seed: int, batch: int, step: int) -> int:
    """A 63-bit seed that depends only on ``(seed, batch, step)``."""
    words = np.random.SeedSequence([seed & _MASK63, batch & _MASK63, step & _MASK63]).generate_state(2, np.uint32)
    return (int(words[0]) << 32 | int(words[1])) & _MASK63


class NoiseStream:
    """Uniform noise in [0, 1) for one batch: ``uniform(step, shape)`` is a pure function of its arguments.

    The returned tensor is a buffer reused by the next call with the same shape: use it before
    asking for the next step.
    """

    def __init__(self, seed: int, batch: int, device: torch.device | str = "cpu") -> None:
        self.seed, self.batch, self.device = int(seed), int(batch), torch.device(device)
        self._gen = torch.Generator(device=self.device)
        self._buf: dict[tuple[int, ...], torch.Tensor] = {}

    def uniform(self, step: int, shape: tuple[int, ...]) -> torch.Tensor:
        self._gen.manual_seed(step_seed(self.seed, self.batch, step))
        buf = self._buf.get(shape)
        if buf is None or buf.is_inference() != torch.is_inference_mode_enabled():
            buf = self._buf[shape] = torch.empty(shape, dtype=torch.float32, device=self.device)
        return buf.uniform_(generator=self._gen)

    def exponential(self, step: int, shape: tuple[int, ...]) -> torch.Tensor:
        """``−log U`` ~ Exp(1) of :meth:`uniform`'s ``U`` (the Gumbel-max sampler's noise); do not modify it.

        Inside :func:`reuse_noise` (CPU only) the tensor is kept and the same one returned to every
        stream with this seed and batch; otherwise it is a fresh tensor.
        """
        kept = _KEPT[-1] if _KEPT and self.device.type == "cpu" else None
        if kept is None:
            return self.uniform(step, shape).log().neg_()
        key = (self.seed, self.batch, int(step), tuple(shape), str(self.device))
        hit = kept.store.get(key)
        if hit is not None:
            kept.hits += 1
            return hit
        kept.misses += 1
        with torch.inference_mode(False):  # a plain tensor: usable in and out of inference mode
            e = self.uniform(step, shape).log().neg_()
        size = e.numel() * e.element_size()
        if kept.used + size <= kept.budget:
            kept.store[key] = e
            kept.used += size
        return e
