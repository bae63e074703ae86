"""Per-step logits processors: what a decode loop applies to the next-token scores of a model.

A method that acts on the sampling distribution rather than on the model's activations (a
decoding-time method) attaches a processor to the model with :func:`processing_logits`; every
decode loop that samples from that model (``eval.sampler.decode``) looks them up with
:func:`logits_processors` and applies them, in attachment order, to the scores it samples from.

A processor is called once per step with the step number, the sequences so far and the scores:
``processor(step, input_ids [rows, W + step], attention_mask [rows, W + step], scores [rows, V])``
and returns new scores of the same shape. ``step == 0`` starts a new batch (``input_ids`` are the
left-padded prompts, repeated prompt-major for several samples per prompt); at step t the last
column is the token sampled at step t − 1 (pad after a row's EOS). Scores are the model's own
log-probabilities up to a per-row constant (before temperature, which the sampler applies with
top-p to what the processors return, as vLLM does with its logits processors); ``-inf`` removes a token.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

import torch
from torch import nn


class LogitsProcessor(Protocol):
    """Changes next-token scores given the sequences so far (see the module docstring)."""

    def __call__(
        self, step: int, input_ids: torch.Tensor, attention_mask: torch.Tensor, scores: torch.Tensor
    ) -> torch.Tensor: ...


_ATTACHED: weakref.WeakKeyDictionary[nn.Module, list[LogitsProcessor]] = weakref.WeakKeyDictionary()


def logits_processors(model: nn.Module) -> tuple[LogitsProcessor, ...]:
    """The processors attached to ``model``, in attachment order (empty: sample from the model's own scores)."""
    return tuple(_ATTACHED.get(model, ()))


@contextmanager
def processing_logits(model: nn.Module, processor: LogitsProcessor) -> Iterator[LogitsProcessor]:
    """Attach ``processor`` to ``model`` while the block runs; detached afterwards, also on error."""
    procs = _ATTACHED.setdefault(model, [])
    procs.append(processor)
    try:
        yield processor
    finally:
        procs.remove(processor)
        if not procs:
            _ATTACHED.pop(model, None)
