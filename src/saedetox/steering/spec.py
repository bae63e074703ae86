"""The steering spec: one small serialisable object that CLI flags, features.json, sweeps and export share.

A spec is a list of :class:`Intervention` s. Each names an SAE (or a raw direction for
baselines), the hook (default: the SAE's own), the latents, the mode (``docs/steering.md``), the strength
as raw ``alpha``, a named ``tier`` or a target effective ``push``, the gate threshold ``tau``,
the clamp value, the position policy and, for ``adaptive`` mode, the detector that scales the
push. Tiers mean "the total steering vector's norm is this fraction of the median residual norm
at the hook" (the *nominal* push), so the same tier pushes comparably hard on any model; gated
modes push only where their gate is open, so their *effective* push (what a run records) is
lower. A ``push`` level asks for that effective push itself: closed form for constant mode,
calibrated on a pilot generation for the others (:mod:`saedetox.eval.runs.push_calibration`).

Gate defaults live in one place, :func:`default_gates`; the adaptive detector's default in
:func:`default_detector`.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from saedetox.discover.features import feature_thresholds, features_file
from saedetox.errors import SaedetoxError
from saedetox.io import atomic_write_text
from saedetox.sae.loaded import LoadedSAE
from saedetox.steering.names import GATED_VECTOR_MODES, MODES, POOLINGS, POSITIONS, TIERS, VECTOR_MODES

Mode = Literal["constant", "conditional", "token", "clamp", "adaptive"]
Tier = Literal["low", "medium", "high"]
Positions = Literal["all", "generated"]
DETECTOR_KINDS: tuple[str, ...] = ("latents", "projection")

# Tier → ‖α Σ_f û_f‖ / median ‖x‖ at the hook (x centred on LayerNorm models).
TIER_FACTORS: dict[str, float] = {"low": 0.125, "medium": 0.25, "high": 0.5}


def parse_tier(tier: str | float) -> str | float:
    """A named tier, or a number: that fraction of the median residual norm (e.g. 0.375)."""
    if isinstance(tier, str) and tier in TIERS:
        return tier
    try:
        value = float(tier)
    except (TypeError, ValueError):
        raise SaedetoxError(
            f"Unknown tier '{tier}': use low, medium, high or a fraction of the median residual norm (e.g. 0.375)."
        ) from None
    if isinstance(tier, bool) or not math.isfinite(value) or not 0 < value <= 8:
        raise SaedetoxError(f"A numeric tier is a fraction of the median residual norm in (0, 8], got {tier!r}.")
    return value


def tier_factor(tier: str | float) -> float:
    """‖α Σ û_f‖ / median ‖x‖ for a tier (named or numeric)."""
    return TIER_FACTORS[tier] if isinstance(tier, str) else float(tier)


def tier_label(tier: str | float) -> str:
    """Run-name fragment: the tier's name, or ``n0.375`` for a numeric tier."""
    return tier if isinstance(tier, str) else f"n{tier:g}"


@dataclass
class Intervention:
    """One steering intervention at one hook point.

    ``sae`` is an SAE name (``reference``, a local SAE-Lens folder, ``release/sae_id``) or an SAE
    already loaded with :func:`saedetox.load_sae`; a spec written to disk records its name.
    Exactly one of ``strength`` (raw α), ``tier`` and ``push`` sets how hard it pushes (default:
    tier ``medium``; clamp mode takes none). See ``docs/steering.md``.
    """

    sae: str | LoadedSAE | None = None
    latents: list[int] = field(default_factory=list)
    hook: str | None = None
    mode: Mode = "constant"
    strength: float | None = None
    tier: Tier | float | None = None  # low | medium | high, or a fraction of the median residual norm
    threshold: float = 0.0
    thresholds: list[float] | None = None  # per-latent gate thresholds (override ``threshold``)
    clamp_value: float = 0.0
    positions: Positions = "all"
    # a raw direction (baselines) instead of the latents' decoder directions; with an SAE and latents
    # as well, the direction is what is added and the latents only open the gate / feed the detector
    vector: list[float] | None = None
    label: str = ""
    push: float | None = None  # target effective push (fraction of the median residual norm)
    detector: dict[str, Any] | None = None  # adaptive mode: see validate_detector

    @property
    def sae_name(self) -> str | None:
        """The SAE's name (a loaded SAE's ``source``), as a spec file records it."""
        return self.sae.source if isinstance(self.sae, LoadedSAE) else self.sae

    def validate(self) -> Intervention:
        """A checked, normalised copy (numeric tier parsed, default tier filled in); ``self`` is left as it is."""
        if self.mode not in MODES:
            raise SaedetoxError(f"Unknown steering mode '{self.mode}': use one of {', '.join(MODES)}.")
        if self.positions not in POSITIONS:
            raise SaedetoxError(f"Unknown position policy '{self.positions}': use all or generated.")
        tier = parse_tier(self.tier) if self.tier is not None else None
        detector = self.detector
        if self.strength is not None and tier is not None:
            raise SaedetoxError("Give either a strength or a tier, not both.")
        if self.push is not None:
            if self.strength is not None or tier is not None:
                raise SaedetoxError("Give one of strength, tier or push, not several.")
            if isinstance(self.push, bool) or not isinstance(self.push, (int, float)) or not 0 < self.push <= 8:
                raise SaedetoxError(f"push is a fraction of the median residual norm in (0, 8], got {self.push!r}.")
            if self.mode == "clamp":
                raise SaedetoxError("Clamp mode has no strength, so it takes no push level.")
        if self.mode == "adaptive":
            if detector is None:
                raise SaedetoxError("Adaptive mode needs a detector (features.json 'detector', or a fitted one).")
            kind = detector.get("kind") if isinstance(detector, dict) else None
            if self.vector is not None and not self.sae and kind == "latents":
                raise SaedetoxError("A raw steering vector has no latents: its detector must be a 'projection'.")
            detector = validate_detector(detector, len(self.latents) if kind == "latents" else 1)
        elif detector is not None:
            raise SaedetoxError(f"A detector is used by adaptive mode only (mode is '{self.mode}').")
        for name in ("strength", "threshold", "clamp_value"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (int, float)) or not math.isfinite(value)):
                raise SaedetoxError(f"{name} must be a finite number, got {value!r}.")
        if self.thresholds is not None:
            if len(self.thresholds) != len(self.latents):
                raise SaedetoxError(f"{len(self.thresholds)} thresholds for {len(self.latents)} latents.")
            if not all(isinstance(t, (int, float)) and math.isfinite(t) for t in self.thresholds):
                raise SaedetoxError("Per-latent thresholds must be finite numbers.")
        if self.vector is None or self.sae:
            if not self.sae:
                raise SaedetoxError("An intervention needs an SAE (a name or a loaded SAE) or a steering vector.")
            if not isinstance(self.sae, (str, LoadedSAE)):
                raise SaedetoxError(f"sae is an SAE name or a loaded SAE (load_sae), not a {type(self.sae).__name__}.")
            if not self.latents:
                raise SaedetoxError("No latents given: an intervention needs at least one latent index.")
            if any((not isinstance(i, int)) or isinstance(i, bool) for i in self.latents):
                raise SaedetoxError(f"Latent indices must be integers, got {self.latents!r}.")
        if self.vector is not None:
            if self.mode not in (GATED_VECTOR_MODES if self.sae else VECTOR_MODES):
                if self.sae:
                    raise SaedetoxError(
                        "A steering vector read by an SAE supports modes constant, conditional and adaptive only."
                    )
                raise SaedetoxError("A raw steering vector supports modes 'constant' and 'adaptive' only.")
            if not self.hook and not self.sae:
                raise SaedetoxError("A raw steering vector needs an explicit hook.")
            if not all(math.isfinite(float(v)) for v in self.vector):
                raise SaedetoxError("The steering vector contains NaN or inf.")
        if self.mode != "clamp" and self.strength is None and tier is None and self.push is None:
            tier = "medium"
        return replace(self, tier=tier, detector=detector, latents=list(self.latents))


def _plain(iv: Intervention) -> dict[str, Any]:
    """An intervention as plain data; a loaded SAE by its name (never copied: it holds the weights)."""
    out = {f.name: copy.deepcopy(getattr(iv, f.name)) for f in fields(iv) if f.name != "sae"}
    return {"sae": iv.sae_name, **out}


def validate_detector(det: Any, n_features: int) -> dict[str, Any]:
    """An adaptive intervention's detector: p = sigmoid(Σ_f coef_f · e_f / scale_f + intercept).

    ``kind`` ``latents``: e_f = the activation of selected latent f (in the spec's latent order);
    ``projection``: e = x · v̂ (the intervention's own direction). ``pooling`` ``max``: e is the
    running maximum over the sequence so far (as the detector was fitted, on per-text maxima),
    ``token``: the current position only.
    """
    if not isinstance(det, dict):
        raise SaedetoxError("A detector is a mapping with kind, coef, intercept, scale and pooling.")
    unknown = set(det) - {"kind", "coef", "intercept", "scale", "pooling"}
    if unknown:
        raise SaedetoxError(f"Unknown detector field(s): {', '.join(sorted(unknown))}.")
    kind, pooling = det.get("kind"), det.get("pooling", "max")
    if kind not in DETECTOR_KINDS:
        raise SaedetoxError(f"Detector kind must be one of {', '.join(DETECTOR_KINDS)}, got {kind!r}.")
    if pooling not in POOLINGS:
        raise SaedetoxError(f"Detector pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}.")
    coef, scale = det.get("coef"), det.get("scale", [1.0] * n_features)
    for name, vals in (("coef", coef), ("scale", scale)):
        if not isinstance(vals, list) or len(vals) != n_features:
            raise SaedetoxError(f"Detector {name} needs {n_features} number(s), one per feature, got {vals!r}.")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in vals):
            raise SaedetoxError(f"Detector {name} must be finite numbers.")
    if any(v <= 0 for v in scale):
        raise SaedetoxError("Detector scales must be positive.")
    intercept = det.get("intercept")
    if not isinstance(intercept, (int, float)) or isinstance(intercept, bool) or not math.isfinite(intercept):
        raise SaedetoxError(f"Detector intercept must be a finite number, got {intercept!r}.")
    return {
        "kind": kind,
        "coef": [float(v) for v in coef],
        "intercept": float(intercept),
        "scale": [float(v) for v in scale],
        "pooling": pooling,
    }


@dataclass
class SteeringSpec:
    """All interventions applied together."""

    interventions: list[Intervention] = field(default_factory=list)

    def validate(self) -> SteeringSpec:
        """A checked, normalised copy (see :meth:`Intervention.validate`); ``self`` is left as it is."""
        if not self.interventions:
            raise SaedetoxError("The steering spec has no interventions.")
        return SteeringSpec([iv.validate() for iv in self.interventions])

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain data (a loaded SAE is recorded by its name)."""
        return {"interventions": [_plain(iv) for iv in self.interventions]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SteeringSpec:
        if not isinstance(data, dict) or not isinstance(data.get("interventions"), list):
            raise SaedetoxError("A steering spec is a mapping with a list under 'interventions'.")
        known = set(Intervention.__dataclass_fields__)
        out = []
        for raw in data["interventions"]:
            if not isinstance(raw, dict):
                raise SaedetoxError("Each intervention in a steering spec must be a mapping.")
            unknown = set(raw) - known
            if unknown:
                raise SaedetoxError(f"Unknown steering-spec field(s): {', '.join(sorted(unknown))}.")
            out.append(Intervention(**raw))
        return cls(out).validate()

    def save(self, path: str | Path) -> None:
        p = Path(path)
        text = (
            yaml.safe_dump(self.to_dict(), sort_keys=False)
            if p.suffix in (".yaml", ".yml")
            else json.dumps(self.to_dict(), indent=2)
        )
        atomic_write_text(p, text)

    @classmethod
    def load(cls, path: str | Path) -> SteeringSpec:
        p = Path(path)
        if not p.exists():
            raise SaedetoxError(f"Steering spec {p} not found.")
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            raise SaedetoxError(f"{p} is not valid YAML/JSON ({type(err).__name__}).") from None
        return cls.from_dict(data)


def default_gates(
    mode: str, features: str | Path | dict[str, Any] | list[float] | None
) -> tuple[float, list[float] | None]:
    """THE gate rule (CLI, sweeps and the splitting study all call it): ``(threshold, per-latent thresholds)``.

    ``conditional``: the per-latent gates discovery stored (a latent's 95th-percentile per-text
    maximum on clean text: the sticky gate opens on few clean texts); 0 when none are known.
    ``token``: 0, i.e. steer wherever a selected latent is active (the paper's token-level rule).
    Other modes have no gate. ``features`` is a features.json path or object, or the gate list.
    """
    if mode != "conditional":
        return 0.0, None
    if isinstance(features, list):
        return 0.0, [float(t) for t in features]
    if isinstance(features, dict):
        th = features.get("thresholds")
        return 0.0, [float(t) for t in th] if isinstance(th, list) else None
    return 0.0, feature_thresholds(str(features) if features is not None else None)


DETECTOR_NOTES = ("target", "intercept_fit")  # features.json detector keys that describe its fit


def default_detector(features: str | Path | dict[str, Any] | None) -> dict[str, Any] | None:
    """The adaptive-mode detector discovery stored in features.json (``detector``), if any."""
    if isinstance(features, (str, Path)):
        p = features_file(features)
        if p is None or not p.is_file():
            return None
        try:
            features = json.loads(p.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None
    det = features.get("detector") if isinstance(features, dict) else None
    if not isinstance(det, dict):
        return None
    det = dict(det)
    order = det.pop("latents", None)  # discovery records the latents it was fitted on
    for note in DETECTOR_NOTES:  # what discovery records about the fit; steering reads none of it
        det.pop(note, None)
    selected = features.get("selected") if isinstance(features, dict) else None
    if isinstance(order, list) and isinstance(selected, list) and order != selected:
        if sorted(order) != sorted(selected) or len(set(order)) != len(order):
            raise SaedetoxError("The features file's detector was fitted on other latents than the selected ones.")
        at = {f: i for i, f in enumerate(order)}  # steering uses the selected order: coef and scale follow it
        for key in ("coef", "scale"):
            if isinstance(det.get(key), list) and len(det[key]) == len(order):
                det[key] = [det[key][at[f]] for f in selected]
    return det


def parse_threshold(
    value: str | float, features: str | None = None, mode: str = "conditional"
) -> tuple[float, list[float] | None]:
    """A gate threshold given as text: a number, or ``auto``: the gates of :func:`default_gates`."""
    if isinstance(value, (int, float)):
        return float(value), None
    if str(value).strip().lower() == "auto":
        return default_gates(mode, features)
    try:
        return float(value), None
    except ValueError:
        raise SaedetoxError(f"The gate threshold must be a number or 'auto', got '{value}'.") from None
