"""Interventions as PyTorch hooks, attached for the duration of a ``with`` block (DESIGN §4).

For latents F with unit decoder directions û_f, activations a_f(x) and strength α:

* ``constant``    x ← x − α Σ_f û_f at every steered position;
* ``conditional`` as constant, but per sequence only from the first position where any
  a_f(x) > τ (a sticky gate, carried across decode steps);
* ``token``       x ← x − α Σ_f 1[a_f(x) > τ] û_f, position by position;
* ``clamp``       a_f ← c keeping the SAE error term: x ← x + Σ_f (c − a_f(x)) d_f.

A forward pre-hook on the whole model reads the attention mask and KV-cache length of every
call, so each hook knows which positions are padding (never touched), which are generated
(policy ``generated``: the last prompt position onward), and when a new sequence starts (the
conditional gate resets). Hooks do no host-device synchronisation.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from saedetox.errors import SaedetoxError
from saedetox.model.load import LoadedModel
from saedetox.model.sites import edit_at, observe_calls
from saedetox.sae.load import load_sae
from saedetox.sae.loaded import LoadedSAE
from saedetox.spec import Intervention, SteeringSpec, tier_factor


@dataclass
class _ForwardState:
    """What the model-level pre-hook learned about the current forward call."""

    mask: torch.Tensor | None = None  # [B, T] bool: real (non-pad) tokens of this call
    past_len: int = 0
    seq_len: int = 0
    prompt_len: int | None = None  # padded prompt width, for the `generated` policy
    fixed_prompt_len: int | None = None


@dataclass
class ResolvedIntervention:
    """An intervention with its SAE loaded and its tensors ready on the model's device."""

    spec: Intervention
    hook: str
    alpha: float
    sae: LoadedSAE | None
    latents: torch.Tensor | None  # long [|F|]
    direction_sum: torch.Tensor  # Σ_f û_f (or the raw vector), [d]
    directions: torch.Tensor | None  # û_F, [|F|, d]
    decoder_rows: torch.Tensor | None  # d_F, [|F|, d]
    median_norm: float | None = None
    gate: torch.Tensor | float = 0.0  # τ, scalar or per latent [|F|]
    read: Callable[[torch.Tensor], torch.Tensor] | None = None  # x -> a_F(x)

    @functools.cached_property
    def vector(self) -> torch.Tensor:
        """The constant shift −α Σ û_f."""
        return -self.alpha * self.direction_sum

    def describe(self) -> dict[str, Any]:
        return {
            "hook": self.hook,
            "mode": self.spec.mode,
            "alpha": self.alpha,
            "tier": self.spec.tier,
            "latents": self.spec.latents,
            "threshold": self.spec.thresholds if self.spec.thresholds is not None else self.spec.threshold,
            "positions": self.spec.positions,
            "median_norm": self.median_norm,
        }


@torch.no_grad()
def median_residual_norm(
    lm: LoadedModel, hook: str, texts: Sequence[str] | None = None, center: bool | None = None
) -> float:
    """Median ‖x‖ over non-BOS tokens of calibration text at ``hook`` (centred on LayerNorm models)."""
    from saedetox.data.calibration import CALIBRATION_TEXTS
    from saedetox.model.capture import capture

    acts = capture(lm, list(texts or CALIBRATION_TEXTS), hook, prepend_bos=True)
    x = torch.cat([a[1:] for a in acts if a.shape[0] > 1])
    if center if center is not None else lm.uses_layernorm:
        x = x - x.mean(-1, keepdim=True)
    return float(x.norm(dim=-1).median())


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
        self._saes = dict(saes or {})
        self._norm_cache: dict[str, float] = {}
        self._calibration = calibration_texts
        self.state = _ForwardState()
        self._gates: dict[int, torch.Tensor] = {}
        self._handles: list[Any] = []
        self.resolved = [self._resolve(iv) for iv in spec.interventions]

    # ------------------------------------------------------------------ resolution

    def _sae(self, name: str) -> LoadedSAE:
        if name not in self._saes:
            self._saes[name] = load_sae(name, device=self.lm.device, model_uses_layernorm=self.lm.uses_layernorm)
        sae = self._saes[name]
        return sae

    def _median_norm(self, hook: str) -> float:
        if hook not in self._norm_cache:
            self._norm_cache[hook] = median_residual_norm(self.lm, hook, self._calibration)
        return self._norm_cache[hook]

    def _resolve(self, iv: Intervention) -> ResolvedIntervention:
        dev, dt = self.lm.device, self.lm.dtype
        sae = None
        latents = directions = rows = None
        if iv.vector is not None:
            hook = iv.hook
            direction_sum = torch.tensor(iv.vector, dtype=torch.float32)
            if direction_sum.numel() != self.lm.d_model:
                raise SaedetoxError(
                    f"Steering vector has {direction_sum.numel()} dimensions but the model width is {self.lm.d_model}."
                )
        else:
            sae = self._sae(iv.sae)
            hook = iv.hook or sae.hook_name
            if sae.d_in != self.lm.d_model:
                raise SaedetoxError(
                    f"SAE {iv.sae} has d_in {sae.d_in} but {self.lm.name} has width {self.lm.d_model}: "
                    "this SAE was trained for another model."
                )
            sae.check_latents(iv.latents)
            sae.to(dev)
            latents = torch.tensor(iv.latents, dtype=torch.long, device=dev)
            directions = sae.unit_directions(latents).to(dev)
            direction_sum = directions.sum(0)
            rows = sae.decoder_rows(latents).to(dev)
        assert hook is not None
        self.lm.site(hook)  # validates the hook exists
        median = None
        if iv.tier is not None:
            median = self._median_norm(hook)
            total = float(direction_sum.norm())
            if total < 1e-12:
                raise SaedetoxError("The steering directions cancel out (their sum has zero norm).")
            alpha = tier_factor(iv.tier) * median / total
        else:
            alpha = float(iv.strength or 0.0)
        return ResolvedIntervention(
            spec=iv,
            hook=hook,
            alpha=alpha,
            sae=sae,
            latents=latents,
            direction_sum=direction_sum.to(dev, dt),
            directions=None if directions is None else directions.to(dev, dt),
            decoder_rows=None if rows is None else rows.to(dev),
            median_norm=median,
            read=None if sae is None or latents is None else sae.latent_reader(latents),
            gate=torch.tensor(iv.thresholds, dtype=torch.float32, device=dev)
            if iv.thresholds is not None
            else float(iv.threshold),
        )

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
            return x + where * r.vector
        assert r.sae is not None and r.latents is not None
        acts = r.read(x) if r.read is not None else r.sae.latent_acts(x, r.latents)  # [B, T, |F|], SAE dtype
        if mode == "clamp":
            change = (r.spec.clamp_value - acts) * r.sae.output_scale(x.to(acts.dtype))
            return x + where * (change @ r.decoder_rows.to(acts.dtype)).to(x.dtype)
        fires = acts > r.gate
        if mode == "token":
            push = fires.to(x.dtype) @ r.directions  # [B, T, d]
            return x - r.alpha * where * push
        # conditional: sticky per-sequence gate from the first firing (real) position onward
        real = self.state.mask if self.state.mask is not None and self.state.mask.shape == fires.shape[:2] else None
        any_fire = fires.any(-1)
        if real is not None:
            any_fire = any_fire & real
        prev = self._gates.get(idx)
        if prev is None or prev.shape[0] != x.shape[0]:
            prev = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        gate = torch.cummax(any_fire.to(torch.int8), dim=1).values.bool() | prev.unsqueeze(1)
        self._gates[idx] = gate[:, -1]
        return x + where * gate.unsqueeze(-1).to(x.dtype) * r.vector

    def attach(self) -> Steerer:
        if self._handles:
            return self
        self._handles.append(observe_calls(self.lm.model, self._observe))
        for idx, r in enumerate(self.resolved):
            self._handles.append(edit_at(self.lm.site(r.hook), functools.partial(self._apply, idx, r)))
        return self

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
    def prompt_length(self, padded_prompt_len: int):
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


def constant_shift(
    lm: LoadedModel, spec: SteeringSpec, saes: dict[str, LoadedSAE] | None = None
) -> dict[str, torch.Tensor]:
    """Hook → the total constant shift a constant-mode spec adds there (for export and checks)."""
    steerer = Steerer(lm, spec, saes)
    out: dict[str, torch.Tensor] = {}
    for r in steerer.resolved:
        if r.spec.mode != "constant" or r.spec.positions != "all":
            raise SaedetoxError(
                f"Only constant steering at all positions can be folded into weights (got mode '{r.spec.mode}', "
                f"positions '{r.spec.positions}'); serve other modes with saedetox hooks."
            )
        out[r.hook] = out.get(r.hook, 0) + r.vector.float()
    return out
