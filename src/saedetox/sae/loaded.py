"""An SAE-Lens SAE together with the conventions needed to use it on an HF model."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from saedetox.errors import SaedetoxError


@dataclass
class LoadedSAE:
    """An SAE-Lens SAE plus the conventions needed to use it on an HF model."""

    sae: Any
    source: str
    hook_name: str
    center: bool = False
    prepend_bos: bool = True
    model_name: str | None = None
    neuronpedia_id: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def d_in(self) -> int:
        return int(self.sae.cfg.d_in)

    @property
    def d_sae(self) -> int:
        return int(self.sae.cfg.d_sae)

    @property
    def architecture(self) -> str:
        return str(self.sae.cfg.architecture())

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> LoadedSAE:
        self.sae = self.sae.to(device=device, dtype=dtype) if dtype is not None else self.sae.to(device)
        return self

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Apply this SAE's input convention (centring) to hook activations."""
        return x - x.mean(-1, keepdim=True) if self.center else x

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """All latent activations for hook activations ``x[..., d_in]``."""
        return self.sae.encode(self.prepare(x).to(self.sae.W_enc.dtype))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """SAE reconstruction of ``prepare(x)`` (same space as ``prepare(x)``)."""
        return self.sae.decode(self.encode(x))

    def check_latents(self, latents: list[int]) -> None:
        bad = [i for i in latents if not 0 <= int(i) < self.d_sae]
        if bad:
            raise SaedetoxError(f"Latent index {bad[0]} is out of range for {self.source} (d_sae = {self.d_sae}).")
        if not latents:
            raise SaedetoxError("No latents given: an intervention needs at least one latent index.")

    @torch.no_grad()
    def latent_acts(self, x: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """Activations of ``latents`` only: exact, and cheap for ReLU / JumpReLU / gated SAEs.

        TopK-style SAEs need the full encoding (a latent's activity depends on all others).
        """
        sae = self.sae
        arch = self.architecture
        x = self.prepare(x).to(sae.W_enc.dtype)
        if arch in ("standard", "jumprelu", "gated"):
            sae_in = sae.process_sae_in(x)
            w = sae.W_enc[:, latents]
            if arch == "gated":
                gate = (sae_in @ w + sae.b_gate[latents]) > 0
                mag = torch.relu(sae_in @ (w * sae.r_mag[latents].exp()) + sae.b_mag[latents])
                return gate * mag
            pre = sae_in @ w + sae.b_enc[latents]
            if arch == "jumprelu":
                return torch.relu(pre) * (pre > sae.threshold[latents])
            return torch.relu(pre)
        return sae.encode(x)[..., latents]

    @torch.no_grad()
    def latent_reader(self, latents: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """``x -> latent_acts(x, latents)`` as one affine map where that is exact.

        For ReLU / JumpReLU SAEs without activation normalisation, centring (x − mean x) and the
        decoder-bias subtraction are linear, so they fold into the selected encoder columns:
        ``(c(x) − b_dec) W = x (W − colmean W) − b_dec W``. Other SAEs use ``latent_acts``.
        """
        sae, cfg = self.sae, self.sae.cfg
        simple = (
            self.architecture in ("standard", "jumprelu")
            and getattr(cfg, "normalize_activations", "none") == "none"
            and getattr(cfg, "reshape_activations", "none") == "none"
        )
        if not simple:
            return lambda x: self.latent_acts(x, latents)
        w_raw = sae.W_enc[:, latents]
        w = w_raw - w_raw.mean(0, keepdim=True) if self.center else w_raw
        b = sae.b_enc[latents] - (sae.b_dec @ w_raw if cfg.apply_b_dec_to_input else 0.0)
        thr = sae.threshold[latents] if self.architecture == "jumprelu" else None

        def read(x: torch.Tensor) -> torch.Tensor:
            pre = torch.addmm(b, x.reshape(-1, x.shape[-1]).to(w.dtype), w).reshape(*x.shape[:-1], -1)
            acts = torch.relu(pre)
            return acts if thr is None else acts * (pre > thr)

        return read

    @torch.no_grad()
    def decoder_rows(self, latents: list[int] | torch.Tensor) -> torch.Tensor:
        """Effective decoder rows d_f (what one unit of a_f adds before output normalisation)."""
        w = self.sae.W_dec[latents]
        if getattr(self.sae.cfg, "rescale_acts_by_decoder_norm", False):
            w = w / w.norm(dim=-1, keepdim=True)
        return w

    @torch.no_grad()
    def unit_directions(self, latents: list[int] | torch.Tensor) -> torch.Tensor:
        """Unit decoder directions û_f, shape ``[len(latents), d_in]``."""
        w = self.sae.W_dec[latents].float()
        return w / w.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    def output_scale(self, x: torch.Tensor) -> torch.Tensor | float:
        """Factor that maps a latent-space change to input space for normalising SAEs."""
        mode = self.sae.cfg.normalize_activations
        if mode not in ("constant_norm_rescale", "layer_norm"):
            return 1.0
        xc = self.prepare(x)
        if mode == "constant_norm_rescale":
            return xc.norm(dim=-1, keepdim=True) / math.sqrt(self.d_in)
        if mode == "layer_norm":
            return (xc - xc.mean(-1, keepdim=True)).std(dim=-1, keepdim=True) + 1e-5
        return 1.0

    def info(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "architecture": self.architecture,
            "d_in": self.d_in,
            "d_sae": self.d_sae,
            "hook_name": self.hook_name,
            "model_name": self.model_name,
            "center": self.center,
            "prepend_bos": self.prepend_bos,
            "normalize_activations": self.sae.cfg.normalize_activations,
            "neuronpedia_id": self.neuronpedia_id,
        }

    def neuronpedia_url(self, latent: int) -> str | None:
        if not self.neuronpedia_id:
            return None
        return f"https://www.neuronpedia.org/{self.neuronpedia_id}/{int(latent)}"
