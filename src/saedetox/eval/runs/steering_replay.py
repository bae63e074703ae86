"""A run's steering statistics measured from its continuations: the HF model, teacher-forced.

The HF backend records effective push, gate openings and firing rate while it generates
(:mod:`saedetox.steering.push_stats`). vLLM steers inside its workers, so a vLLM run measures the same
statistics afterwards: each prompt + its continuation goes once through the HF model with the
method's steerer attached, in generation mode with the prompt's width, feeding exactly the tokens
the decode loop fed (the prompt, then every generated token but the last; after an EOS nothing
counts). The counted positions, the gates' prompt readings and the pushes are then those of the
generation, up to the backends' numerics (tested against the HF sampler's own statistics).
Every stored row is replayed, so a resumed run reports the statistics of all its continuations.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from saedetox.eval.sampler.kvcache import forward_params
from saedetox.eval.sampler.sampling import SamplingConfig
from saedetox.eval.sampler.vllm import encode_prompts
from saedetox.methods.base import Method
from saedetox.model.load import LoadedModel
from saedetox.steering.steerer import generating

REPLAY_BATCH = 64  # sequences per forward pass


def fed_tokens(continuation: Sequence[int], max_new_tokens: int) -> list[int]:
    """The generated tokens the decode loop fed back: all of them after an EOS stop (the EOS itself is not
    in ``continuation``), all but the last when the row ran to ``max_new_tokens``."""
    c = list(continuation)
    return c[:-1] if len(c) >= max_new_tokens else c


@torch.inference_mode()
def replay_steering(
    lm: LoadedModel,
    method: Method,
    texts: Sequence[str],
    continuations: Sequence[Sequence[Sequence[int]]],
    sampling: SamplingConfig,
) -> None:
    """Measure ``method``'s steering statistics on ``continuations[i][j]`` (token ids) of ``texts[i]``;
    ``method.stats()`` then reports them (its earlier statistics are reset)."""
    steerer = method.steerer
    if steerer is None:
        return
    steerer.reset_stats()
    prompts = encode_prompts(lm, texts, sampling)
    seqs = [(prompts[i], fed_tokens(c, sampling.max_new_tokens)) for i, cs in enumerate(continuations) for c in cs]
    order = sorted(range(len(seqs)), key=lambda s: len(seqs[s][0]))  # similar widths share a pass
    pad = lm.tokenizer.pad_token_id
    pad = pad if pad is not None else (lm.tokenizer.eos_token_id or 0)
    with method.context():
        for s in range(0, len(order), REPLAY_BATCH):
            _replay_batch(lm, [seqs[k] for k in order[s : s + REPLAY_BATCH]], pad)


def _replay_batch(lm: LoadedModel, seqs: list[tuple[list[int], list[int]]], pad: int) -> None:
    width = max(len(p) for p, _ in seqs)
    total = width + max(len(c) for _, c in seqs)
    ids = torch.full((len(seqs), total), pad, dtype=torch.long)
    mask = torch.zeros(len(seqs), total, dtype=torch.long)
    for r, (p, c) in enumerate(seqs):
        row = p + c
        ids[r, width - len(p) : width - len(p) + len(row)] = torch.tensor(row)
        mask[r, width - len(p) : width - len(p) + len(row)] = 1
    pos = (mask.cumsum(-1) - 1).clamp_min_(0)
    dev = lm.device
    extra = {"logits_to_keep": 1} if "logits_to_keep" in forward_params(lm.model) else {}
    with generating(lm.model, width):
        lm.model(input_ids=ids.to(dev), attention_mask=mask.to(dev), position_ids=pos.to(dev), use_cache=False, **extra)
