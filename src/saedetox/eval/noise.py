"""Common random numbers: the noise a sampled batch uses depends only on (seed, batch, step, shape).

Every method that samples the same batch of prompts (unsteered, each steering mode, each
baseline) draws the same uniforms at every decode step, so paired differences between methods
measure the methods, not the luck of the draw. :class:`NoiseStream` re-seeds one generator per
step from a hash of ``(seed, batch, step)`` (NumPy's ``SeedSequence`` mixing), so the noise of
step t never depends on how many numbers earlier steps used, on which batches were skipped on
resume, or on the thread count.

The stream is device specific: a CPU generator (MT19937) and a CUDA one (Philox) give different,
equally valid numbers, so runs compare with each other only on the same kind of device.
"""

from __future__ import annotations

import numpy as np
import torch

_MASK63 = (1 << 63) - 1


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
