"""Named steering levels compiled once on the HF model into what a vLLM worker needs.

A *level* is a name (``off``, ``low``, …) bound to a :class:`~saedetox.steering.spec.SteeringSpec` or
to nothing. Compiling resolves each spec exactly as the HF backend does (:class:`Steerer`: the
SAE loaded with the model's conventions, tiers and push levels turned into α on this model), and
keeps only tensors, numbers and the loaded SAE, so that a worker process applies the same
arithmetic (:mod:`saedetox.steering.modes`) without the HF model. Clients never send vectors: a
request names a level.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from saedetox.errors import SaedetoxError
from saedetox.io import atomic_save_torch, load_torch_file
from saedetox.model.load import LoadedModel
from saedetox.sae.loaded import LoadedSAE
from saedetox.steering.resolve import ResolvedDetector, ResolvedIntervention
from saedetox.steering.spec import SteeringSpec
from saedetox.steering.steerer import Steerer

LEVEL_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
OFF = "off"
LEVEL_KEY = "saedetox_level"  # the key of SamplingParams.extra_args (vllm_xargs over HTTP) naming a request's level
FORMAT = "saedetox-levels/1"


class PortableSAE:
    """A loaded SAE that pickles: its SAE-Lens config and weights (conventions and folded scales included).

    SAE-Lens modules hold closures that do not pickle; this keeps what rebuilds them exactly.
    """

    def __init__(self, loaded: LoadedSAE) -> None:
        self.fields = {k: v for k, v in vars(loaded).items() if k != "sae"}
        self.cfg = loaded.sae.cfg.to_dict()
        self.state = {k: v.detach().cpu() for k, v in loaded.sae.state_dict().items()}
        self._loaded: LoadedSAE | None = loaded

    def __getstate__(self) -> dict[str, Any]:
        return {"fields": self.fields, "cfg": self.cfg, "state": self.state}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._loaded = None

    def load(self) -> LoadedSAE:
        if self._loaded is None:
            from sae_lens import SAE  # deferred: as in saedetox.sae.load

            sae = SAE.from_dict(self.cfg)
            sae.load_state_dict(self.state)
            self._loaded = LoadedSAE(sae=sae, **self.fields)
        return self._loaded


@dataclass
class CompiledIntervention:
    """One resolved intervention, on the CPU, free of closures (it crosses process boundaries)."""

    layer: int
    when: str  # pre (the block's input: hook_resid_pre) | post (its output: hook_resid_post)
    mode: str
    alpha: float
    vector: torch.Tensor  # −α Σ û_f, [d]
    directions: torch.Tensor | None  # û_F [|F|, d]
    decoder_rows: torch.Tensor | None  # d_F [|F|, d]
    gate: torch.Tensor | float
    clamp_value: float
    positions: str  # all | generated
    portable_sae: PortableSAE | None
    latents: torch.Tensor | None
    detector: ResolvedDetector | None

    @property
    def sae(self) -> LoadedSAE | None:
        return None if self.portable_sae is None else self.portable_sae.load()

    def read_latents(self, x: torch.Tensor) -> torch.Tensor:
        """a_F(x) with the SAE's own reader (built on first use, in the process that steers)."""
        assert self.sae is not None and self.latents is not None
        reader = self.__dict__.get("_reader")
        if reader is None:
            reader = self.__dict__["_reader"] = self.sae.latent_reader(self.latents)
        return reader(x)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_reader"}

    def to(self, device: torch.device | str, dtype: torch.dtype) -> CompiledIntervention:
        def mv(t: Any) -> Any:
            return t.to(device) if isinstance(t, torch.Tensor) else t

        self.vector = self.vector.to(device, dtype)
        self.directions = None if self.directions is None else self.directions.to(device, dtype)
        self.decoder_rows = mv(self.decoder_rows)
        self.gate, self.latents = mv(self.gate), mv(self.latents)
        if self.sae is not None:
            self.sae.to(device)
        self.__dict__.pop("_reader", None)
        if self.detector is not None:
            d = self.detector
            d.coef, d.inv_scale, d.projection = mv(d.coef), mv(d.inv_scale), mv(d.projection)
        return self


def _site(hook: str) -> tuple[int, str]:
    m = re.fullmatch(r"blocks\.(\d+)\.hook_resid_(pre|post)", hook)
    if m is None:
        raise SaedetoxError(
            f"The vLLM backend steers the residual stream only (blocks.L.hook_resid_pre / _post), not '{hook}'."
        )
    return int(m.group(1)), m.group(2)


def _compile(r: ResolvedIntervention) -> CompiledIntervention:
    layer, when = _site(r.hook)

    def cpu(t: Any) -> Any:
        return t.detach().to("cpu") if isinstance(t, torch.Tensor) else t

    det = r.detector
    if det is not None:
        det = ResolvedDetector(
            kind=det.kind,
            coef=cpu(det.coef),
            inv_scale=cpu(det.inv_scale),
            intercept=det.intercept,
            pooling=det.pooling,
            projection=cpu(det.projection),
        )
    return CompiledIntervention(
        layer=layer,
        when=when,
        mode=r.spec.mode,
        alpha=float(r.alpha),
        vector=cpu(r.vector).float(),
        directions=None if r.directions is None else cpu(r.directions).float(),
        decoder_rows=cpu(r.decoder_rows),
        gate=cpu(r.gate),
        clamp_value=float(r.spec.clamp_value),
        positions=r.spec.positions,
        portable_sae=None if r.sae is None else PortableSAE(r.sae),
        latents=cpu(r.latents),
        detector=det,
    )


def compile_levels(
    lm: LoadedModel, levels: Mapping[str, SteeringSpec | Steerer | None]
) -> dict[str, list[CompiledIntervention]]:
    """``{name: spec or None}`` → ``{name: [CompiledIntervention, …]}`` (``None``: the unsteered model)."""
    if not levels:
        raise SaedetoxError("Give at least one steering level (e.g. off and a steered one).")
    out: dict[str, list[CompiledIntervention]] = {}
    for name, spec in levels.items():
        if not LEVEL_NAME.match(str(name)):
            raise SaedetoxError(f"Level name '{name}' must be 1-64 letters, digits, '_', '-' or '.'.")
        if spec is None:
            out[name] = []
            continue
        steerer = spec if isinstance(spec, Steerer) else Steerer(lm, spec)
        out[name] = [_compile(r) for r in steerer.resolved]
    return out


def save_levels(levels: dict[str, list[CompiledIntervention]], path: str | Path, bos_id: int | None) -> Path:
    """Write compiled levels to one file a worker reads (a trusted local file: it holds the SAEs)."""
    atomic_save_torch({"format": FORMAT, "levels": levels, "bos_id": bos_id}, path)
    return Path(path)


def load_levels_file(path: str | Path) -> tuple[dict[str, list[CompiledIntervention]], int | None]:
    """The levels and the BOS id a levels file holds."""
    data = load_torch_file(path, FORMAT, "saedetox levels file", weights_only=False)  # holds compiled dataclasses
    return data["levels"], data.get("bos_id")
