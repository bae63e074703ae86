"""What one forward call of a steered model is: which positions are real, BOS, new and generated.

A :class:`Steerer` keeps one :class:`ForwardState`; a pre-hook on the whole model calls
:meth:`ForwardState.observe` before every forward pass, and each intervention's hook reads it.
Outside generation (``gen_width`` None) a call scores a text; inside, the positions whose
outputs predict generated tokens (padded prompt width − 1 onward, pad and post-EOS excluded)
are marked once each, cached or uncached, for the statistics.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class ForwardState:
    """What the model-level pre-hook learned about the current forward call."""

    mask: torch.Tensor | None = None  # [B, T] bool: real (non-pad) tokens of this call
    bos: torch.Tensor | None = None  # [B, T] bool: BOS tokens of this call (they never open a gate)
    past_len: int = 0
    seq_len: int = 0
    gen_width: int | None = None  # padded prompt width while generating; None = scoring a text
    counted_to: int = 0  # absolute positions below this were already counted in this generation
    counted: torch.Tensor | None = None  # [B, T] bool: this call's new generated positions (for stats)
    prompt_end: int | None = None  # column of the last prompt position, in the call that first covers it
    done: torch.Tensor | None = None  # [B] rows that have emitted EOS (generation)

    def observe(self, args: tuple, kwargs: dict, bos_id: int | None, eos_id: int | None) -> bool:
        """Read one forward call's arguments; True when it starts a new sequence (empty KV cache)."""
        ids = kwargs.get("input_ids", args[0] if args else None)
        ref = ids if ids is not None else kwargs.get("inputs_embeds")
        if ref is None:
            return False
        bsz, seq = ref.shape[0], ref.shape[1]
        mask = kwargs.get("attention_mask")
        past = past_length(kwargs, seq, mask)
        if mask is not None and mask.dim() == 2:
            cur = mask[:, -seq:].bool()
        else:
            cur = torch.ones(bsz, seq, dtype=torch.bool, device=ref.device)
        self.mask, self.past_len, self.seq_len = cur, past, seq
        self.bos = (ids == bos_id) & cur if ids is not None and bos_id is not None else None
        self.counted, self.prompt_end = None, None
        if self.gen_width is not None:
            self._mark_generated(ids, cur, past, seq, eos_id)
        return past == 0

    def _mark_generated(
        self, ids: torch.Tensor | None, cur: torch.Tensor, past: int, seq: int, eos: int | None
    ) -> None:
        width = int(self.gen_width)  # type: ignore[arg-type]
        if past == 0 and seq <= self.counted_to:  # a fresh sequence inside the same generation context
            self.counted_to, self.done = 0, None
        start = max(width - 1, self.counted_to)
        if past + seq <= start:
            return
        if seq == 1 and past >= width:  # a decode step: what the general path below gives, with fewer launches
            counted = cur
            if ids is not None and eos is not None:
                ended = ids == eos
                if self.done is not None and self.done.shape[0] == ids.shape[0]:
                    ended = ended | self.done.unsqueeze(1)
                self.done = ended[:, -1]
                counted = counted & ~ended
            self.counted = counted
            if self.counted_to <= width - 1:
                self.prompt_end = width - 1 - past
            self.counted_to = past + seq
            return
        pos = torch.arange(past, past + seq, device=cur.device)
        counted = cur & (pos >= start).unsqueeze(0)
        if ids is not None and eos is not None:
            ended = ((ids == eos) & (pos >= width).unsqueeze(0)).to(torch.int8).cummax(dim=1).values.bool()
            if self.done is not None and self.done.shape[0] == ids.shape[0]:
                ended = ended | self.done.unsqueeze(1)
            self.done = ended[:, -1]
            counted = counted & ~ended
        self.counted = counted
        if self.counted_to <= width - 1 < past + seq:
            self.prompt_end = width - 1 - past
        self.counted_to = past + seq


def past_length(kwargs: dict, seq: int, mask: torch.Tensor | None) -> int:
    """How many positions the KV cache already holds when the model is called.

    Transformers has moved this between releases (``cache_position``, ``past_key_values``, and
    from 5.24 a ``cache`` kwarg with no ``cache_position``), so every form is read, and a 2-D
    attention mask longer than the input is the fallback that all of them agree with.
    """
    cache_pos = kwargs.get("cache_position")
    if cache_pos is not None and cache_pos.numel() > 0:
        return int(cache_pos.reshape(-1)[0])
    for key in ("past_key_values", "cache", "past_key_value"):
        pkv = kwargs.get(key)
        if pkv is not None and hasattr(pkv, "get_seq_length"):
            return int(pkv.get_seq_length())
    if mask is not None and mask.dim() == 2 and mask.shape[1] > seq:
        return int(mask.shape[1] - seq)
    return 0
