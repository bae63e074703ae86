"""Interventions as PyTorch hooks, attached for the duration of a ``with`` block (``docs/steering.md``).

:class:`Steerer` resolves a spec (:mod:`saedetox.steering.resolve`) and, while attached, edits
the hidden state at each intervention's hook with that mode's arithmetic
(:mod:`saedetox.steering.modes`). It also watches every call of the whole model, reading the
attention mask, the token ids and the KV-cache length, so each edit knows which positions are
padding (never touched), which are BOS (never open a gate), and when a new sequence starts
(gates and running maxima reset).

Position semantics. A forward pass outside :meth:`Steerer.generation` *scores a text*
(perplexity, lm-eval log-likelihoods): every real position of it is steered, whatever the
position policy. Only *generation* tells prompt from generated positions: inside
``generation(prompt_width)`` the policy ``generated`` steers the last prompt position onward
(the outputs that predict generated tokens), cached or not. The sampler enters that context per
batch; while attached, the Steerer also wraps ``lm.model.generate`` so that direct ``generate``
calls (users, lm-eval generation tasks) count as generation with the input width as prompt
width. During generation it records what it did (:mod:`saedetox.steering.push_stats`).
Hooks do no host-device synchronisation.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from saedetox.model.load import LoadedModel, as_loaded_model
from saedetox.model.sites import edit_at, observe_calls, on_batch_repeat
from saedetox.sae.loaded import LoadedSAE
from saedetox.steering.apply import apply_intervention
from saedetox.steering.positions import ForwardState
from saedetox.steering.push_stats import InterventionStats, combine_totals, summarise, summary_of
from saedetox.steering.resolve import ResolvedIntervention, Resolver
from saedetox.steering.spec import SteeringSpec

_ATTACHED: weakref.WeakKeyDictionary[nn.Module, list[Steerer]] = weakref.WeakKeyDictionary()


@contextmanager
def generating(model: nn.Module, prompt_width: int) -> Iterator[None]:
    """Enter :meth:`Steerer.generation` of every Steerer attached to ``model`` (for decode loops)."""
    with ExitStack() as stack:
        for steerer in list(_ATTACHED.get(model, [])):
            stack.enter_context(steerer.generation(prompt_width))
        yield


def attached_steerers(model: nn.Module) -> list[Steerer]:
    """The Steerers attached to ``model`` now."""
    return list(_ATTACHED.get(model, []))


class Steerer:
    """Attach a :class:`SteeringSpec` to a model: ``with Steerer(lm, spec): lm.model.generate(...)``."""

    def __init__(
        self,
        lm: LoadedModel,
        spec: SteeringSpec,
        saes: dict[str, LoadedSAE] | None = None,
        calibration_texts: Sequence[str] | None = None,
    ) -> None:
        spec = spec.validate()
        self.lm = lm = as_loaded_model(lm)
        self.spec = spec
        self.state = ForwardState()
        self._gates: dict[int, torch.Tensor] = {}
        self._maxima: dict[int, torch.Tensor] = {}
        self._handles: list[RemovableHandle] = []
        self._generate: Any = None
        self._bypass = False
        tok = lm.tokenizer
        self._bos = getattr(tok, "bos_token_id", None) if tok is not None else None
        self._eos = getattr(tok, "eos_token_id", None) if tok is not None else None
        self._resolver = Resolver(lm, saes, calibration_texts)
        self.resolved = [self._resolver.resolve(iv) for iv in spec.interventions]
        self._stats = [InterventionStats() for _ in self.resolved]

    def describe(self) -> list[dict[str, Any]]:
        return [r.describe() for r in self.resolved]

    # ------------------------------------------------------------------ hooks

    def _observe(self, args: tuple, kwargs: dict) -> None:
        if not self._bypass and self.state.observe(args, kwargs, self._bos, self._eos):
            self._gates.clear()  # a new sequence: gates and running maxima restart
            self._maxima.clear()

    def _positions(self, r: ResolvedIntervention, x: torch.Tensor) -> torch.Tensor:
        """[B, T] bool: which positions this intervention may touch in this call."""
        st = self.state
        bsz, seq = x.shape[0], x.shape[1]
        mask = st.mask
        if mask is None or mask.shape != (bsz, seq):
            mask = torch.ones(bsz, seq, dtype=torch.bool, device=x.device)
        if r.spec.positions == "generated" and st.gen_width is not None:
            pos = torch.arange(st.past_len, st.past_len + seq, device=x.device)
            mask = mask & (pos >= st.gen_width - 1).unsqueeze(0)
        return mask

    def _apply(self, idx: int, r: ResolvedIntervention, x: torch.Tensor) -> torch.Tensor:
        if self._bypass:
            return x
        allowed = self._positions(r, x)
        where = allowed.unsqueeze(-1).to(x.dtype)
        st = self.state
        real = st.mask if st.mask is not None and st.mask.shape == allowed.shape else None
        bos = st.bos if st.bos is not None and st.bos.shape == allowed.shape else None
        counts = real if real is not None else torch.ones_like(allowed)  # positions that may open gates
        if bos is not None:
            counts = counts & ~bos
        res = apply_intervention(r, x, where, real, counts, self._gates.get(idx), self._maxima.get(idx))
        if res.gate_last is not None:
            self._gates[idx] = res.gate_last
        if res.max_last is not None:
            self._maxima[idx] = res.max_last
        if st.counted is not None and st.counted.shape == allowed.shape:
            self._record(idx, x, res.out, res.opened, res.scale, counts)
        return res.out

    def _record(
        self,
        idx: int,
        x: torch.Tensor,
        out: torch.Tensor,
        opened: torch.Tensor | None,
        scale: torch.Tensor | None,
        counts: torch.Tensor,
    ) -> None:
        st = self.state
        acc = self._stats[idx]
        assert st.counted is not None
        acc.add_positions((out.float() - x.float()).norm(dim=-1), st.counted, opened, scale)
        if st.prompt_end is not None and opened is not None:
            cols = st.prompt_end + 1
            acc.add_prompt((opened[:, :cols] & counts[:, :cols]).any(1))

    # ------------------------------------------------------------------ attach / detach

    def attach(self) -> Steerer:
        if self._handles:
            return self
        self._handles.append(observe_calls(self.lm.model, self._observe))
        self._handles.append(on_batch_repeat(self.lm.model, self.repeat_batch))
        for idx, r in enumerate(self.resolved):
            self._handles.append(edit_at(self.lm.site(r.hook), functools.partial(self._apply, idx, r)))
        self._wrap_generate()
        _ATTACHED.setdefault(self.lm.model, []).append(self)
        return self

    def _wrap_generate(self) -> None:
        model = self.lm.model
        inner = model.generate

        @functools.wraps(inner)
        def generate(*args: Any, **kwargs: Any) -> Any:
            if self.state.gen_width is not None:  # the caller already entered generation()
                return inner(*args, **kwargs)
            ref = kwargs.get("input_ids", kwargs.get("inputs", args[0] if args else None))
            if ref is None:
                ref = kwargs.get("inputs_embeds")
            with self.generation(int(ref.shape[1]) if ref is not None else 0):
                return inner(*args, **kwargs)

        self._generate = (model.__dict__.get("generate"), generate)
        model.generate = generate

    def repeat_batch(self, n: int) -> None:
        """Every sequence of the current batch now stands for ``n`` sequences (row i → rows i·n … i·n + n − 1).

        A decode loop that encodes each prompt once and then repeats its KV cache calls this (through
        :func:`saedetox.model.sites.repeat_batch_state`) after the prefill, so per-sequence state
        (conditional gates, the adaptive detector's running maxima, which rows ended) is repeated
        with the rows instead of silently reset.
        """
        if n < 1:
            raise ValueError(f"repeat_batch needs n >= 1, got {n}.")
        for state in (self._gates, self._maxima):
            for idx, t in list(state.items()):
                state[idx] = t.repeat_interleave(n, dim=0)
        if self.state.done is not None:
            self.state.done = self.state.done.repeat_interleave(n, dim=0)
        for acc in self._stats:  # the prefill's generated position counts once per sequence
            acc.repeat_last(n)

    @property
    def is_attached(self) -> bool:
        return bool(self._handles)

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._gates.clear()
        self._maxima.clear()
        model = self.lm.model
        if self._generate is not None:
            before, ours = self._generate
            if model.__dict__.get("generate") is ours:
                if before is None:
                    del model.__dict__["generate"]
                else:
                    model.generate = before
            self._generate = None
        attached = _ATTACHED.get(model, [])
        if self in attached:
            attached.remove(self)
        self.state = ForwardState()

    def __enter__(self) -> Steerer:
        return self.attach()

    def __exit__(self, *exc: object) -> None:
        self.detach()

    @contextmanager
    def generation(self, prompt_width: int) -> Iterator[None]:
        """Generate inside this block: ``prompt_width`` = the padded prompt width of the batch.

        Policy ``generated`` steers the last prompt position onward; statistics are recorded.
        Outside it every forward pass scores a text (every real position is steered).
        """
        st = self.state
        saved = (st.gen_width, st.counted_to, st.done)
        st.gen_width, st.counted_to, st.done = int(prompt_width), 0, None
        try:
            yield
        finally:
            st = self.state
            st.gen_width, st.counted_to, st.done = saved
            st.counted, st.prompt_end = None, None
            for acc in self._stats:
                acc.flush()

    # ------------------------------------------------------------------ statistics

    def median_norm(self, r: ResolvedIntervention) -> float:
        """The hook's median residual norm (measured now, with the hooks bypassed, if a raw strength skipped it)."""
        if r.median_norm is None:
            others = [s for s in _ATTACHED.get(self.lm.model, []) if not s._bypass]
            for s in others + [self]:
                s._bypass = True
            try:
                r.median_norm = self._resolver.median_norm(r.hook)
            finally:
                for s in others + [self]:
                    s._bypass = False
        return r.median_norm

    def batch_totals(self) -> list[dict[str, float | None]]:
        """Per intervention, the sums gathered since the last reset (then reset): one generated batch's share."""
        out = [acc.totals() for acc in self._stats]
        self.reset_stats()
        return out

    def stats(self, batches: Sequence[Sequence[dict[str, float | None]]] | None = None) -> dict[str, Any]:
        """Effective push and gate statistics gathered during generation since the last reset.

        With ``batches`` (one :meth:`batch_totals` per generated batch, in batch order): the statistics
        of those batches instead, whichever process generated them.
        """
        if batches is not None:
            sums = [combine_totals([b[i] for b in batches]) for i in range(len(self.resolved))]
        else:
            sums = [acc.totals() for acc in self._stats]
        rows = []
        for r, total in zip(self.resolved, sums, strict=True):
            median = self.median_norm(r)
            nominal = None if r.spec.mode == "clamp" else abs(r.alpha) * r.direction_norm / median
            rows.append(
                {
                    "hook": r.hook,
                    "mode": r.spec.mode,
                    "alpha": r.alpha,
                    "nominal_push": nominal,
                    "target_push": r.target_push,
                    "median_norm": median,
                    **summary_of(total, median),
                }
            )
        return summarise(rows)

    def reset_stats(self) -> None:
        self._stats = [InterventionStats() for _ in self.resolved]
