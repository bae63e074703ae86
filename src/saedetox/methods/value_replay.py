"""Rectification's statistics measured on stored continuations: the rule applied teacher-forced, step by step.

A backend whose decoding the HF decode loop's processor did not see (vLLM, where the same rule runs in
its workers: :mod:`saedetox.serving.rectify`) leaves :class:`~saedetox.methods.dead_end.RectifyStats`
empty. :func:`replay_rectification` recomputes them from the continuations' token ids: at each step a
continuation took (its tokens, plus the EOS step when it stopped before ``max_new_tokens``) the HF
model's next-token scores and the value model's ``Q_D`` are computed on the prompt and the tokens before
it, and :func:`~saedetox.methods.dead_end.rectify` counts what it would change. The HF decode loop also
counts the steps of rows that have already finished (fed pad) while others run, so its ``rows`` are
larger; the shares are over the steps counted.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from saedetox.methods.dead_end import RectifyStats, rectify
from saedetox.methods.value_model import ValueProcessor
from saedetox.model.load import LoadedModel

#: sequences per teacher-forced pass
BATCH = 16


def step_counts(conts: Sequence[Sequence[int]], max_new_tokens: int) -> list[int]:
    """Sampling steps behind each continuation (ids cut before EOS): one more than its tokens when EOS ended it."""
    return [len(c) + (1 if len(c) < max_new_tokens else 0) for c in conts]


@torch.inference_mode()
def replay_rectification(
    lm: LoadedModel,
    processor: ValueProcessor,
    prompt_ids: Sequence[Sequence[int]],
    continuation_ids: Sequence[Sequence[Sequence[int]]],
    max_new_tokens: int,
) -> RectifyStats:
    """``processor.stats`` replaced by those of the continuations (per prompt, as sampled), replayed teacher-forced."""
    seqs = [(list(p), list(c)) for p, rows in zip(prompt_ids, continuation_ids, strict=True) for c in rows]
    stats = processor.stats = RectifyStats()
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
    dev = lm.device
    for s in range(0, len(seqs), BATCH):
        chunk = seqs[s : s + BATCH]
        steps = step_counts([c for _, c in chunk], max_new_tokens)
        width = max(len(p) + len(c) for p, c in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for i, (p, c) in enumerate(chunk):  # left-padded, as the decode loop feeds them
            ids[i, width - len(p) - len(c) :] = torch.tensor(p + c)
            mask[i, width - len(p) - len(c) :] = 1
        ids, mask = ids.to(dev), mask.to(dev)
        pos = (mask.cumsum(-1) - 1).clamp_min(0)
        logits = lm.model(input_ids=ids, attention_mask=mask, position_ids=pos).logits
        q = processor.vm(ids.to(next(processor.vm.parameters()).device), mask.to(ids.device))
        rows, cols = [], []
        for i, ((_, c), n) in enumerate(zip(chunk, steps, strict=True)):
            first = width - 1 - len(c)  # the scores after the prompt's last token: step 0
            rows += [i] * n
            cols += range(first, first + n)
        if not rows:
            continue
        r, k = torch.tensor(rows, device=dev), torch.tensor(cols, device=dev)
        rectify(logits[r, k].float(), q[r.to(q.device), k.to(q.device)].to(dev), processor.eps, processor.rounds, stats)
    return stats
