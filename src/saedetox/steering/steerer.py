"""Interventions as PyTorch hooks, attached for the duration of a ``with`` block (DESIGN §4).

:class:`Steerer` resolves a spec (:mod:`saedetox.steering.resolve`) and, while attached, edits
the hidden state at each intervention's hook with that mode's arithmetic
(:mod:`saedetox.steering.modes`). It also watches every call of the whole model, reading the
attention mask and KV-cache length, so each edit knows which positions are padding (never
touched), which are generated (policy ``generated``: the last prompt position onward), and when
a new sequence starts (the conditional gate resets). Hooks do no host-device synchronisation.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.hooks import RemovableHandle

from saedetox.model.load import LoadedModel
from saedetox.model.sites import edit_at, observe_calls, on_batch_repeat
from saedetox.sae.loaded import LoadedSAE
from saedetox.steering import modes
from saedetox.steering.resolve import ResolvedIntervention, Resolver
from saedetox.steering.spec import SteeringSpec


@dataclass
class _ForwardState:
    """What the model-level pre-hook learned about the current forward call."""

    mask: torch.Tensor | None = None  # [B, T] bool: real (non-pad) tokens of this call
    past_len: int = 0
    seq_len: int = 0
    prompt_len: int | None = None  # padded prompt width, for the `generated` policy
    fixed_prompt_len: int | None = None


class Steerer:
    """Attach a :class:`SteeringSpec` to a model: ``with Steerer(lm, spec): lm.model.generate(...)``."""

    def __init__(
        self,
        lm: LoadedModel,
        spec: SteeringSpec,
        saes: dict[str, LoadedSAE] | None = None,
        calibration_texts: Sequence[str] | None = None,
    ) -> None:
        spec.validate()
        self.lm = lm
        self.spec = spec
        self.state = _ForwardState()
        self._gates: dict[int, torch.Tensor] = {}
        self._handles: list[RemovableHandle] = []
        resolver = Resolver(lm, saes, calibration_texts)
        self.resolved = [resolver.resolve(iv) for iv in spec.interventions]

    def describe(self) -> list[dict[str, Any]]:
        return [r.describe() for r in self.resolved]

    # ------------------------------------------------------------------ hooks

    def _observe(self, args: tuple, kwargs: dict) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        embeds = kwargs.get("inputs_embeds")
        ref = ids if ids is not None else embeds
        if ref is None:
            return
        bsz, seq = ref.shape[0], ref.shape[1]
        mask = kwargs.get("attention_mask")
        past = _past_length(kwargs, seq, mask)
        if mask is not None and mask.dim() == 2:
            cur = mask[:, -seq:].bool()
        else:
            cur = torch.ones(bsz, seq, dtype=torch.bool, device=ref.device)
        st = self.state
        st.mask, st.past_len, st.seq_len = cur, past, seq
        if past == 0:
            self._gates.clear()
            st.prompt_len = st.fixed_prompt_len if st.fixed_prompt_len is not None else seq

    def _positions(self, r: ResolvedIntervention, x: torch.Tensor) -> torch.Tensor:
        """[B, T] bool: which positions this intervention may touch in this call."""
        st = self.state
        bsz, seq = x.shape[0], x.shape[1]
        mask = st.mask
        if mask is None or mask.shape != (bsz, seq):
            mask = torch.ones(bsz, seq, dtype=torch.bool, device=x.device)
        if r.spec.positions == "generated":
            prompt = st.prompt_len if st.prompt_len is not None else seq
            pos = torch.arange(st.past_len, st.past_len + seq, device=x.device)
            mask = mask & (pos >= prompt - 1).unsqueeze(0)
        return mask

    def _apply(self, idx: int, r: ResolvedIntervention, x: torch.Tensor) -> torch.Tensor:
        mode = r.spec.mode
        where = self._positions(r, x).unsqueeze(-1).to(x.dtype)
        if mode == "constant":
            return modes.constant(x, where, r.vector)
        assert r.sae is not None and r.latents is not None
        acts = r.read(x) if r.read is not None else r.sae.latent_acts(x, r.latents)  # [B, T, |F|], SAE dtype
        if mode == "clamp":
            scale = r.sae.output_scale(x.to(acts.dtype))
            return modes.clamp(x, where, acts, r.spec.clamp_value, scale, r.decoder_rows)
        fires = acts > r.gate
        if mode == "token":
            return modes.token(x, where, fires, r.directions, r.alpha)
        real = self.state.mask if self.state.mask is not None and self.state.mask.shape == fires.shape[:2] else None
        prev = self._gates.get(idx)
        if prev is None or prev.shape[0] != x.shape[0]:
            prev = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        out, self._gates[idx] = modes.conditional(x, where, fires, real, prev, r.vector)
        return out

    def attach(self) -> Steerer:
        if self._handles:
            return self
        self._handles.append(observe_calls(self.lm.model, self._observe))
        self._handles.append(on_batch_repeat(self.lm.model, self.repeat_batch))
        for idx, r in enumerate(self.resolved):
            self._handles.append(edit_at(self.lm.site(r.hook), functools.partial(self._apply, idx, r)))
        return self

    def repeat_batch(self, n: int) -> None:
        """Every sequence of the current batch now stands for ``n`` sequences (row i → rows i·n … i·n + n − 1).

        A decode loop that encodes each prompt once and then repeats its KV cache calls this (through
        :func:`saedetox.model.sites.repeat_batch_state`) after the prefill, so per-sequence state
        (the conditional gates) is repeated with the rows instead of silently reset.
        """
        if n < 1:
            raise ValueError(f"repeat_batch needs n >= 1, got {n}.")
        for idx, gate in list(self._gates.items()):
            self._gates[idx] = gate.repeat_interleave(n, dim=0)

    @property
    def is_attached(self) -> bool:
        return bool(self._handles)

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._gates.clear()
        self.state = _ForwardState()

    def __enter__(self) -> Steerer:
        return self.attach()

    def __exit__(self, *exc: object) -> None:
        self.detach()

    @contextmanager
    def prompt_length(self, padded_prompt_len: int) -> Iterator[None]:
        """Fix the padded prompt width (needed for policy ``generated`` without a KV cache)."""
        self.state.fixed_prompt_len = padded_prompt_len
        try:
            yield
        finally:
            self.state.fixed_prompt_len = None


def _past_length(kwargs: dict, seq: int, mask: torch.Tensor | None) -> int:
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
