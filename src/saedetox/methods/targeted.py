"""The ``sae-targeted`` method: a direction solved to lower the selected latents and leave clean text's alone.

Raw SAE steering subtracts α u with u = Σ_{f∈S} û_f (the selected latents' unit decoder
directions). At the SAE's hook, adding −α v changes latent j's pre-activation by −α e_j · v, where
e_j is its effective encoder column (W_enc[:, j], centred like the SAE's input on LayerNorm
models). The decoder direction says what a latent writes, not how it is read: u lowers the
targets only as far as e_j · u, and moves every other latent whose encoder column is not
orthogonal to it. ``sae-targeted`` solves for the shift instead:

    v = argmin_v  Σ_{j∈S} (e_j · v − ‖e_j‖)²  +  λ_c Σ_{j∈C} ρ_j (e_j · v)²  +  λ ‖v‖²

The target term asks every selected latent to fall by the same amount per unit of its encoder
norm (for one latent and no other term, v is its encoder direction: the shift that lowers it
most per unit norm). ρ_j is the fraction of clean calibration tokens on which latent j fires and
C the latents other than S with ρ_j ≥ ``min_rate``, so the clean term is the expected squared
change of the active latents per clean token. λ = ``ridge`` × the mean ‖e_j‖² over S keeps the
problem well posed. Closed form: v = (E_S E_Sᵀ + λ_c E_C diag(ρ) E_Cᵀ + λ I)⁻¹ E_S t with
t_j = ‖e_j‖ (one d × d solve). The unit v is steered like any direction (tiers, push levels),
gated by the SAE's own gate or detector in conditional and adaptive mode. The record compares it
with the unit raw direction û = u / ‖u‖ at equal norm.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch

from saedetox.data.calibration import CALIBRATION_TEXTS
from saedetox.errors import SaedetoxError
from saedetox.methods.base import Method
from saedetox.methods.sae import steering_method
from saedetox.model.capture import capture
from saedetox.model.load import LoadedModel
from saedetox.sae.loaded import LoadedSAE
from saedetox.steering.resolve import Resolver
from saedetox.steering.spec import SteeringSpec


@dataclass(frozen=True)
class TargetedConfig:
    """The settings of the targeted solve (see the module docstring)."""

    clean_weight: float = 1.0  # λ_c
    ridge: float = 1e-3  # λ, relative to the mean squared norm of the targets' encoder columns
    min_rate: float = 0.01  # a latent is clean-active when it fires on at least this share of clean tokens


@dataclass
class TargetedSolution:
    """The solved direction and what it does to the latents, per unit of α (for the run's record)."""

    direction: torch.Tensor  # unit v, [d]
    clean_latents: list[int]
    clean_rates: list[float]
    target_drop: list[float]  # e_j · v̂ for j in S: what −α v̂ lowers each target by, per unit α
    raw_target_drop: list[float]  # e_j · û for the unit raw direction û
    clean_change: float  # sqrt(Σ_C ρ_j (e_j · v̂)²)
    raw_clean_change: float  # the same for û

    def record(self) -> dict[str, Any]:
        return {
            "n_clean_latents": len(self.clean_latents),
            "target_drop": self.target_drop,
            "raw_target_drop": self.raw_target_drop,
            "clean_change": self.clean_change,
            "raw_clean_change": self.raw_clean_change,
        }


def encoder_columns(sae: LoadedSAE) -> torch.Tensor:
    """``[d, d_sae]``: how a shift of the hook's activation moves each pre-activation (centring folded in)."""
    w = sae.sae.W_enc.detach().float().cpu()
    return w - w.mean(0, keepdim=True) if sae.center else w


@torch.no_grad()
def clean_firing_rates(lm: LoadedModel, sae: LoadedSAE, hook: str, texts: list[str] | None = None) -> torch.Tensor:
    """``[d_sae]``: the fraction of clean tokens (BOS excluded) on which each latent is active."""
    acts = capture(lm, list(texts or CALIBRATION_TEXTS), hook, prepend_bos=True)
    x = torch.cat([a[1:] for a in acts if a.shape[0] > 1])
    if x.shape[0] == 0:
        raise SaedetoxError("The clean calibration texts have no tokens past BOS.")
    return (sae.encode(x.to(sae.sae.W_enc.device)) > 0).float().mean(0).cpu()


def solve_direction(
    enc: torch.Tensor,
    targets: list[int],
    raw: torch.Tensor,
    rates: torch.Tensor,
    cfg: TargetedConfig = TargetedConfig(),
) -> TargetedSolution:
    """The targeted direction for encoder columns ``enc`` ``[d, d_sae]``, the target latents and clean firing
    rates ``[d_sae]``; ``raw`` (Σ û_f, ``[d]``) is only compared with it in the record."""
    if cfg.clean_weight < 0 or cfg.ridge <= 0 or not 0 < cfg.min_rate <= 1:
        raise SaedetoxError("sae-targeted needs clean_weight >= 0, ridge > 0 and min_rate in (0, 1].")
    enc, u = enc.double(), raw.double().flatten()
    s = torch.tensor(targets, dtype=torch.long)
    in_s = torch.zeros(enc.shape[1], dtype=torch.bool)
    in_s[s] = True
    c = torch.nonzero((rates >= cfg.min_rate) & ~in_s).flatten()
    e_s, e_c, rho = enc[:, s], enc[:, c], rates[c].double()
    t = e_s.norm(dim=0)
    lam = cfg.ridge * float((e_s**2).sum(0).mean())
    gram = e_s @ e_s.T + cfg.clean_weight * (e_c * rho) @ e_c.T + lam * torch.eye(enc.shape[0], dtype=enc.dtype)
    v = torch.linalg.solve(gram, e_s @ t)
    if float(v.norm()) < 1e-12:
        raise SaedetoxError("The targeted direction is zero: the selected latents' encoder columns vanish.")
    v, u_hat = v / v.norm(), u / u.norm().clamp_min(1e-12)

    def clean(w: torch.Tensor) -> float:
        return float(((e_c.T @ w) ** 2 * rho).sum().sqrt())

    return TargetedSolution(
        direction=v.float(),
        clean_latents=[int(j) for j in c],
        clean_rates=[float(r) for r in rho],
        target_drop=[float(x) for x in e_s.T @ v],
        raw_target_drop=[float(x) for x in e_s.T @ u_hat],
        clean_change=clean(v),
        raw_clean_change=clean(u_hat),
    )


RULE = (
    "v = argmin sum_S (e_j.v - ||e_j||)^2 + clean_weight * sum_C rate_j (e_j.v)^2 + lambda ||v||^2, "
    "e_j = encoder column j; vector = v / ||v||; shift = -alpha * vector"
)


def targeted_spec(
    lm: LoadedModel, spec: SteeringSpec, cfg: TargetedConfig = TargetedConfig()
) -> tuple[SteeringSpec, TargetedSolution]:
    """A one-intervention SAE spec steering the targeted direction instead of its decoder directions
    (its mode, gate, detector and strength kept: the SAE still gates), and the solution."""
    spec = spec.validate()
    if len(spec.interventions) != 1 or spec.interventions[0].vector is not None:
        raise SaedetoxError("sae-targeted steers one SAE intervention (an SAE and its latents), not a raw vector.")
    iv = spec.interventions[0]
    sae = Resolver(lm).sae(iv.sae)  # type: ignore[arg-type]
    sae.check_latents(iv.latents)
    hook = iv.hook or sae.hook_name
    raw = sae.unit_directions(iv.latents).sum(0).cpu()
    solve = solve_direction(encoder_columns(sae), iv.latents, raw, clean_firing_rates(lm, sae, hook), cfg)
    out = replace(iv, sae=sae, hook=hook, vector=solve.direction.tolist(), label="sae-targeted")
    return SteeringSpec([out]).validate(), solve


def targeted_method(lm: LoadedModel, spec: SteeringSpec, cfg: TargetedConfig = TargetedConfig()) -> Method:
    """``sae-targeted``: :func:`targeted_spec` attached while the method is active."""
    steered, solve = targeted_spec(lm, spec, cfg)
    m = steering_method(lm, steered, "sae-targeted")
    m.details["targeted"] = solve.record()
    return m
