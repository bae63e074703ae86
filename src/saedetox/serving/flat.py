"""Steering a flattened token batch (vLLM's layout) per request, with per-request state.

vLLM runs many requests in one forward pass as one ``[N, d]`` tensor with no padding: request i
owns rows ``starts[i]:starts[i+1]`` (a whole prompt, a chunk of one, or one decode token), and
its first row sits at absolute position ``computed[i]``. :class:`FlatSteering` packs each
level's requests into a padded ``[b, T, d]`` batch, applies each intervention with
:func:`~saedetox.steering.apply.apply_intervention` (the HF backend's own dispatch and
arithmetic), and scatters the result back. Per-request state (the conditional gate, the adaptive
running maximum) is keyed by request id, follows a request across steps and chunks, and is
dropped by :meth:`FlatSteering.finish`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

from saedetox.serving.compiled import CompiledIntervention
from saedetox.steering import modes
from saedetox.steering.apply import apply_intervention


@dataclass
class StepInfo:
    """The layout of one forward pass: which rows belong to which request, and where they sit."""

    req_ids: Sequence[str]
    starts: Sequence[int]  # n + 1 offsets into the flat rows
    computed: Sequence[int]  # absolute position of each request's first row in this pass
    prompt_lens: Sequence[int]
    levels: Sequence[str]
    token_ids: torch.Tensor | None = None  # [N] the rows' token ids (BOS never opens a gate)


@dataclass
class _Packed:
    rows: list[int]  # which requests
    index: torch.Tensor  # [b, T] flat row of each (request, column); 0 where padding
    valid: torch.Tensor  # [b, T] bool
    position: torch.Tensor  # [b, T] absolute positions
    prompt_len: torch.Tensor  # [b]
    bos: torch.Tensor | None  # [b, T] bool


class FlatSteering:
    """Named levels applied to flattened batches; one instance per worker."""

    def __init__(self, levels: dict[str, list[CompiledIntervention]], bos_id: int | None) -> None:
        self.levels = levels
        self.bos_id = bos_id
        self.sites: dict[tuple[int, str], list[tuple[str, int, CompiledIntervention]]] = {}
        for name, ivs in levels.items():
            for k, iv in enumerate(ivs):
                self.sites.setdefault((iv.layer, iv.when), []).append((name, k, iv))
        self.gates: dict[tuple[str, int, str], torch.Tensor] = {}
        self.maxima: dict[tuple[str, int, str], torch.Tensor] = {}
        self._step: StepInfo | None = None
        self.unknown_seen = 0
        self._packed: dict[str, _Packed] = {}

    # ------------------------------------------------------------------ per step

    def begin(self, step: StepInfo | None) -> None:
        """Start a forward pass (before any steered layer runs); ``None``: a pass with nothing to steer.

        Requests are checked against the levels before they reach the engine (:mod:`saedetox.serving.engine`);
        a level unknown here is left unsteered rather than failing the whole batch, and counted.
        """
        self._step = step
        self._packed = {}
        if step is None:
            return
        self.unknown_seen += sum(1 for lv in step.levels if lv not in self.levels)
        self.finish(r for r, c in zip(step.req_ids, step.computed, strict=True) if c == 0)  # (re)started

    def _pack(self, level: str, device: torch.device) -> _Packed | None:
        if level in self._packed:
            return self._packed[level]
        st = self._step
        assert st is not None
        rows = [i for i, lv in enumerate(st.levels) if lv == level]
        if not rows:
            return None
        lens = [st.starts[i + 1] - st.starts[i] for i in rows]
        width = max(lens)
        col = torch.arange(width)
        start = torch.tensor([st.starts[i] for i in rows])
        length = torch.tensor(lens)
        valid = col.unsqueeze(0) < length.unsqueeze(1)
        index = torch.where(valid, start.unsqueeze(1) + col.unsqueeze(0), torch.zeros((), dtype=torch.long))
        position = torch.tensor([st.computed[i] for i in rows]).unsqueeze(1) + col.unsqueeze(0)
        bos = None
        if st.token_ids is not None and self.bos_id is not None:
            bos = (st.token_ids.to("cpu")[index] == self.bos_id) & valid
        packed = _Packed(
            rows=rows,
            index=index.to(device),
            valid=valid.to(device),
            position=position.to(device),
            prompt_len=torch.tensor([st.prompt_lens[i] for i in rows], device=device),
            bos=None if bos is None else bos.to(device),
        )
        self._packed[level] = packed
        return packed

    def apply(self, layer: int, when: str, x: torch.Tensor) -> torch.Tensor:
        """Steer the flat hidden state ``x`` ``[N, d]`` at one site; rows past the last request stay."""
        entries = self.sites.get((layer, when))
        if not entries or self._step is None:
            return x
        out = x
        for level, k, iv in entries:
            p = self._pack(level, x.device)
            if p is None:
                continue
            xs = out[p.index]  # [b, T, d]
            allowed = p.valid
            if iv.positions == "generated":
                allowed = allowed & (p.position >= (p.prompt_len - 1).unsqueeze(1))
            counts = p.valid if p.bos is None else p.valid & ~p.bos
            keys = [(level, k, self._step.req_ids[i]) for i in p.rows]
            prev_gate = self._stack(self.gates, keys, torch.bool, x.device) if iv.mode == "conditional" else None
            prev_max = self._stack(self.maxima, keys, torch.float32, x.device) if iv.mode == "adaptive" else None
            res = apply_intervention(iv, xs, allowed.unsqueeze(-1).to(x.dtype), p.valid, counts, prev_gate, prev_max)
            if res.gate_last is not None:
                for key, g in zip(keys, res.gate_last, strict=True):
                    self.gates[key] = g
            if res.max_last is not None:
                for key, m in zip(keys, res.max_last, strict=True):
                    self.maxima[key] = m
            if out is x:
                out = x.clone()
            out[p.index[p.valid]] = res.out[p.valid]
        return out

    @staticmethod
    def _stack(
        store: dict[tuple[str, int, str], torch.Tensor], keys: list[tuple[str, int, str]], dtype: torch.dtype, device
    ) -> torch.Tensor | None:
        have = [store.get(k) for k in keys]
        if all(h is None for h in have):
            return None
        if dtype == torch.bool:
            fill = torch.zeros((), dtype=torch.bool, device=device)
            return torch.stack([h if h is not None else fill for h in have])
        ref = next(h for h in have if h is not None)
        fill = torch.full_like(ref, modes.NO_EVIDENCE)
        return torch.stack([h if h is not None else fill for h in have])

    # ------------------------------------------------------------------ request lifetime

    def finish(self, req_ids: Iterable[str]) -> None:
        """Forget the state of requests that ended (finished, aborted or preempted)."""
        gone = set(req_ids)
        if not gone:
            return
        for store in (self.gates, self.maxima):
            for key in [k for k in store if k[2] in gone]:
                del store[key]

    def state_size(self) -> int:
        """How many per-request state entries are held (0 once every request has finished)."""
        return len(self.gates) + len(self.maxima)
