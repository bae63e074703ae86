"""Load SAEs (SAE-Lens registry ``release/sae_id`` or a local SAE-Lens folder) and apply their conventions.

Conventions applied automatically (DESIGN §3):

* **Centring.** SAEs trained on TransformerLens activations of LayerNorm models with
  ``center_writing_weights=True`` (TL's default, and an explicit override of
  ``gpt2-small-res-jb``) see mean-free residual vectors; we encode ``x - x.mean(-1)``.
  RMSNorm models and SAEs trained on plain HF activations are used raw.
* **BOS.** ``metadata.prepend_bos`` tells callers to prepend the BOS token.
* **Normalisation.** ``constant_norm_rescale`` / ``layer_norm`` run inside SAE-Lens'
  encode/decode; ``expected_average_only_in`` is folded into the weights (SAE-Lens does this
  for registry SAEs with a known factor; for others we estimate ``sqrt(d_in) / E‖x‖`` on
  calibration text, as SAE-Lens' trainer defines it).
"""

from __future__ import annotations

import difflib
import json
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from saedetox.errors import SaedetoxError

REFERENCE_PREFIX = "reference"


def reference_sae_dir(width: int | None = None) -> Path:
    base = Path(__file__).resolve().parent / "assets" / "reference" / "sae"
    if width is None:
        main = base / "MAIN"
        return base / main.read_text().strip() if main.exists() else base
    return base / f"width_{width}"


def reference_sae_widths() -> list[int]:
    base = Path(__file__).resolve().parent / "assets" / "reference" / "sae"
    return sorted(int(p.name.split("_")[1]) for p in base.glob("width_*") if (p / "cfg.json").exists())


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
            raise SaedetoxError("No latents given: pass --features with at least one index.")

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


# --------------------------------------------------------------------------- conventions


def wants_centring(metadata: Any, model_uses_layernorm: bool | None) -> bool:
    """TL centres writing weights by default on LayerNorm models; HF-trained SAEs are raw."""
    kwargs = metadata.get("model_from_pretrained_kwargs") or {}
    if "center_writing_weights" in kwargs:
        requested = bool(kwargs["center_writing_weights"])
    else:
        cls = metadata.get("model_class_name")
        requested = cls in (None, "HookedTransformer", "HookedSAETransformer")
    if model_uses_layernorm is None:
        return requested
    return requested and model_uses_layernorm


def _from_sae(sae: Any, source: str, model_uses_layernorm: bool | None) -> LoadedSAE:
    md = sae.cfg.metadata
    hook = md.get("hook_name")
    if not hook:
        raise SaedetoxError(f"SAE {source} has no metadata.hook_name; pass --hook explicitly.")
    if getattr(sae.cfg, "reshape_activations", "none") == "hook_z":
        raise SaedetoxError(
            f"SAE {source} reads attention-head outputs (hook_z); steering supports residual/MLP/attn-out SAEs."
        )
    pb = md.get("prepend_bos")
    return LoadedSAE(
        sae=sae,
        source=source,
        hook_name=str(hook),
        center=wants_centring(md, model_uses_layernorm),
        prepend_bos=True if pb is None else bool(pb),
        model_name=md.get("model_name"),
        neuronpedia_id=md.get("neuronpedia_id"),
    )


def _check_local_dir(path: Path) -> None:
    cfg = path / "cfg.json"
    weights = path / "sae_weights.safetensors"
    if not cfg.exists() or not weights.exists():
        raise SaedetoxError(f"{path} is not an SAE-Lens folder: it needs cfg.json and sae_weights.safetensors.")
    try:
        json.loads(cfg.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise SaedetoxError(f"{cfg} is not valid JSON.") from None
    from safetensors import safe_open

    try:
        with safe_open(str(weights), "pt") as fh:
            for key in fh.keys():
                fh.get_slice(key)
    except Exception:  # noqa: BLE001 - safetensors raises several types
        raise SaedetoxError(f"{weights} is unreadable or truncated; re-save or re-download it.") from None


def _load_local(path: Path, device: str, dtype: str) -> Any:
    from sae_lens import SAE

    _check_local_dir(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return SAE.load_from_disk(str(path), device=device, dtype=dtype)
        except (KeyError, ValueError, RuntimeError, TypeError) as err:
            raise SaedetoxError(f"Could not load the SAE in {path}: {str(err).splitlines()[0]}") from None


def registry() -> dict[str, Any]:
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    return get_pretrained_saes_directory()


def _close(word: str, options: list[str], n: int = 5) -> str:
    near = difflib.get_close_matches(word, options, n=n, cutoff=0.4)
    return ", ".join(near) if near else ", ".join(sorted(options)[:n])


def split_registry_name(name: str) -> tuple[str, str]:
    """``release/sae_id`` → (release, sae_id), validated against the SAE-Lens registry."""
    if "/" not in name:
        raise SaedetoxError(
            f"SAE '{name}' is neither a local SAE-Lens folder nor release/sae_id "
            f"(e.g. gpt2-small-res-jb/blocks.6.hook_resid_pre). Close releases: {_close(name, list(registry()))}."
        )
    release, sae_id = name.split("/", 1)
    reg = registry()
    if release not in reg:
        raise SaedetoxError(f"Unknown SAE release '{release}'. Close matches: {_close(release, list(reg))}.")
    ids = list(reg[release].saes_map)
    if sae_id not in ids:
        raise SaedetoxError(f"Release '{release}' has no SAE '{sae_id}'. Close matches: {_close(sae_id, ids)}.")
    return release, sae_id


def _load_registry(name: str, device: str, dtype: str) -> tuple[Any, str | None]:
    from sae_lens import SAE

    release, sae_id = split_registry_name(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            sae = SAE.from_pretrained(release, sae_id, device=device, dtype=dtype)
        except Exception as err:  # noqa: BLE001 - hub/network errors come in many types
            raise SaedetoxError(
                f"Could not download SAE {name} from the Hugging Face hub ({type(err).__name__}). With no network, "
                f"run `SAE.from_pretrained('{release}', '{sae_id}').save_model(DIR)` where there is network and pass "
                "--sae DIR, or set HF_HUB_OFFLINE=1 with a filled HF cache."
            ) from None
    return sae, registry()[release].neuronpedia_id.get(sae_id)


def load_sae(
    name: str,
    device: str | torch.device = "cpu",
    dtype: str = "float32",
    model_uses_layernorm: bool | None = None,
) -> LoadedSAE:
    """Load an SAE by local folder, ``reference[/width_N]`` or SAE-Lens ``release/sae_id``."""
    device = str(device)
    path = Path(name).expanduser()
    neuronpedia = None
    if name == REFERENCE_PREFIX or name.startswith(REFERENCE_PREFIX + "/"):
        rest = name[len(REFERENCE_PREFIX) + 1 :]
        path = reference_sae_dir() if not rest else reference_sae_dir().parent / rest
        if not (path / "cfg.json").exists():
            widths = ", ".join(f"reference/width_{w}" for w in reference_sae_widths()) or "none committed"
            raise SaedetoxError(f"No reference SAE '{name}' (available: reference, {widths}).")
        sae = _load_local(path, device, dtype)
    elif path.exists():
        sae = _load_local(path, device, dtype)
    elif str(name).startswith((".", "/", "~")):
        raise SaedetoxError(f"SAE folder {name} does not exist.")
    else:
        sae, neuronpedia = _load_registry(name, device, dtype)
    loaded = _from_sae(sae, name, model_uses_layernorm)
    loaded.neuronpedia_id = loaded.neuronpedia_id or neuronpedia
    return loaded


@torch.no_grad()
def fold_expected_average_norm(sae: LoadedSAE, acts: torch.Tensor) -> float | None:
    """Fold SAE-Lens' ``expected_average_only_in`` factor sqrt(d_in)/E‖x‖, estimated on ``acts``."""
    if sae.sae.cfg.normalize_activations != "expected_average_only_in":
        return None
    xc = sae.prepare(acts.float())
    factor = math.sqrt(sae.d_in) / float(xc.norm(dim=-1).mean())
    sae.sae.fold_activation_norm_scaling_factor(factor)
    sae.notes.append(f"folded expected_average_only_in scaling factor {factor:.4g} estimated on calibration text")
    return factor
