"""Resolution: an :class:`Intervention` turned into tensors on the model's device, strength tiers calibrated.

Tiers mean "the total steering vector's norm is this fraction of the median residual norm at
the hook", measured once per hook on calibration text (:func:`median_residual_norm`). A
``push`` level starts from the same closed form (exact for constant mode); gated and adaptive
modes are then rescaled on a pilot generation (:mod:`saedetox.eval.runs.push_calibration`), which
:attr:`ResolvedIntervention.needs_calibration` asks for.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from saedetox.data.calibration import CALIBRATION_TEXTS
from saedetox.errors import SaedetoxError
from saedetox.model.capture import capture
from saedetox.model.load import LoadedModel
from saedetox.sae.load import load_sae
from saedetox.sae.loaded import LoadedSAE
from saedetox.steering.spec import Intervention, tier_factor


@dataclass
class ResolvedDetector:
    """An adaptive intervention's detector as tensors: p = sigmoid(e · (coef / scale) + intercept)."""

    kind: str  # latents | projection
    coef: torch.Tensor  # float32 [k]
    inv_scale: torch.Tensor  # float32 [k]
    intercept: float
    pooling: str  # max | token
    projection: torch.Tensor | None = None  # kind projection: the unit direction [d, 1] (float32)


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
    detector: ResolvedDetector | None = None
    target_push: float | None = None  # the spec's push level, if it asked for one

    @functools.cached_property
    def vector(self) -> torch.Tensor:
        """The constant shift −α Σ û_f."""
        return -self.alpha * self.direction_sum

    @functools.cached_property
    def direction_norm(self) -> float:
        """‖Σ û_f‖ (the raw vector's norm for baselines)."""
        return float(self.direction_sum.float().norm())

    @property
    def mode(self) -> str:
        return self.spec.mode

    @property
    def clamp_value(self) -> float:
        return float(self.spec.clamp_value)

    def read_latents(self, x: torch.Tensor) -> torch.Tensor:
        """a_F(x) ``[..., |F|]`` in the SAE's dtype."""
        assert self.sae is not None and self.latents is not None
        return self.read(x) if self.read is not None else self.sae.latent_acts(x, self.latents)

    @property
    def needs_calibration(self) -> bool:
        """A push level in a mode whose effective push is not the nominal one (gated, adaptive)."""
        return self.target_push is not None and self.spec.mode != "constant"

    def set_alpha(self, alpha: float) -> None:
        """Change the strength (push calibration); the constant shift follows."""
        self.alpha = float(alpha)
        self.__dict__.pop("vector", None)

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
            "push": self.target_push,
        }


@torch.no_grad()
def median_residual_norm(
    lm: LoadedModel, hook: str, texts: Sequence[str] | None = None, center: bool | None = None
) -> float:
    """Median ‖x‖ over non-BOS tokens of calibration text at ``hook`` (centred on LayerNorm models)."""
    acts = capture(lm, list(texts or CALIBRATION_TEXTS), hook, prepend_bos=True)
    x = torch.cat([a[1:] for a in acts if a.shape[0] > 1])
    if center if center is not None else lm.uses_layernorm:
        x = x - x.mean(-1, keepdim=True)
    return float(x.norm(dim=-1).median())


class Resolver:
    """Resolves interventions for one model, loading each SAE and measuring each hook's median norm once."""

    def __init__(
        self,
        lm: LoadedModel,
        saes: dict[str, LoadedSAE] | None = None,
        calibration_texts: Sequence[str] | None = None,
    ) -> None:
        self.lm = lm
        self.saes = dict(saes or {})
        self._norms: dict[str, float] = {}
        self._calibration = calibration_texts

    def sae(self, sae: str | LoadedSAE) -> LoadedSAE:
        """A loaded SAE as it is; a name loaded once, with the model's conventions (:func:`load_sae`)."""
        if isinstance(sae, LoadedSAE):
            return sae
        if sae not in self.saes:
            self.saes[sae] = load_sae(sae, self.lm)
        return self.saes[sae]

    def median_norm(self, hook: str) -> float:
        if hook not in self._norms:
            self._norms[hook] = median_residual_norm(self.lm, hook, self._calibration)
        return self._norms[hook]

    def resolve(self, iv: Intervention) -> ResolvedIntervention:
        lm = self.lm
        dev, dt = lm.device, lm.dtype
        sae = None
        latents = directions = rows = None
        hook = iv.hook
        if iv.sae:
            sae = self.sae(iv.sae)
            hook = iv.hook or sae.hook_name
            if sae.d_in != lm.d_model:
                raise SaedetoxError(
                    f"SAE {sae.source} has d_in {sae.d_in} but {lm.name} has width {lm.d_model}: "
                    "this SAE was trained for another model."
                )
            sae.check_latents(iv.latents)
            sae.to(dev)
            latents = torch.tensor(iv.latents, dtype=torch.long, device=dev)
            directions = sae.unit_directions(latents).to(dev)
            direction_sum = directions.sum(0)
            rows = sae.decoder_rows(latents).to(dev)
        if iv.vector is not None:  # a raw direction; with an SAE, its latents only gate or detect
            directions = rows = None
            direction_sum = torch.tensor(iv.vector, dtype=torch.float32)
            if direction_sum.numel() != lm.d_model:
                raise SaedetoxError(
                    f"Steering vector has {direction_sum.numel()} dimensions but the model width is {lm.d_model}."
                )
        assert hook is not None
        lm.site(hook)  # validates the hook exists
        median = None
        if iv.tier is not None or iv.push is not None:
            median = self.median_norm(hook)
            total = float(direction_sum.norm())
            if total < 1e-12:
                raise SaedetoxError("The steering directions cancel out (their sum has zero norm).")
            factor = float(iv.push) if iv.push is not None else tier_factor(iv.tier)  # type: ignore[arg-type]
            alpha = factor * median / total
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
            detector=None if iv.detector is None else _detector(iv.detector, direction_sum, dev),
            target_push=None if iv.push is None else float(iv.push),
        )


def _detector(det: dict[str, Any], direction: torch.Tensor, dev: torch.device) -> ResolvedDetector:
    proj = None
    if det["kind"] == "projection":
        proj = (direction.float() / direction.float().norm().clamp_min(1e-12)).reshape(-1, 1).to(dev)
    return ResolvedDetector(
        kind=det["kind"],
        coef=torch.tensor(det["coef"], dtype=torch.float32, device=dev),
        inv_scale=1.0 / torch.tensor(det["scale"], dtype=torch.float32, device=dev),
        intercept=float(det["intercept"]),
        pooling=det["pooling"],
        projection=proj,
    )
