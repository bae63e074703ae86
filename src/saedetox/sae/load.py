"""Load SAEs (SAE-Lens registry ``release/sae_id``, a local SAE-Lens folder or ``reference``) with their conventions.

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
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from saedetox.errors import SaedetoxError
from saedetox.model import hub
from saedetox.sae.loaded import LoadedSAE

REFERENCE_PREFIX = "reference"
REFERENCE_SAE_ROOT = Path(__file__).resolve().parents[1] / "assets" / "reference" / "sae"


def reference_sae_dir(width: int | None = None) -> Path:
    base = REFERENCE_SAE_ROOT
    if width is None:
        main = base / "MAIN"
        return base / main.read_text().strip() if main.exists() else base
    return base / f"width_{width}"


def reference_sae_widths() -> list[int]:
    return sorted(int(p.name.split("_")[1]) for p in REFERENCE_SAE_ROOT.glob("width_*") if (p / "cfg.json").exists())


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
    try:
        with safe_open(str(weights), "pt") as fh:
            for key in fh.keys():
                fh.get_slice(key)
    except Exception:  # noqa: BLE001 - safetensors raises several types
        raise SaedetoxError(f"{weights} is unreadable or truncated; re-save or re-download it.") from None


def _load_local(path: Path, device: str, dtype: str) -> Any:
    from sae_lens import SAE  # deferred: sae_lens imports transformer_lens (~10 s); only loading an SAE needs it

    _check_local_dir(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return SAE.load_from_disk(str(path), device=device, dtype=dtype)
        except (KeyError, ValueError, RuntimeError, TypeError) as err:
            raise SaedetoxError(f"Could not load the SAE in {path}: {str(err).splitlines()[0]}") from None


def registry() -> dict[str, Any]:
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory  # deferred: as above

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
    from sae_lens import SAE  # deferred: sae_lens imports transformer_lens (~10 s); only loading an SAE needs it

    release, sae_id = split_registry_name(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            sae = SAE.from_pretrained(release, sae_id, device=device, dtype=dtype)
        except Exception as err:  # noqa: BLE001 - hub/network errors come in many types
            raise SaedetoxError(_hub_failure(name, release, sae_id, err)) from None
    return sae, registry()[release].neuronpedia_id.get(sae_id)


def _hub_failure(name: str, release: str, sae_id: str, err: BaseException) -> str:
    """One line: a file missing from the local cache (offline mode on), or no network (offline mode off)."""
    fetch = f"SAE.from_pretrained('{release}', '{sae_id}')"
    if hub.offline():
        where = hub.missing_file(err)
        repo, file = where or (registry()[release].repo_id, None)
        what = f"{file} of the hub repo {repo}" if file else f"a file of the hub repo {repo}"
        complaint = hub.not_in_cache(err) or f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        return (
            f"SAE {name}: {what} is missing from the local Hugging Face cache {hub.cache_dir()} and offline mode "
            f"is on ({complaint}). Where there is network, {fetch} downloads it into the cache (copy the cache "
            "here), or .save_model(DIR) on the loaded SAE writes a folder to load instead."
        )
    return (
        f"Could not download SAE {name} from the Hugging Face hub ({type(err).__name__}). With no network, "
        f"run `{fetch}.save_model(DIR)` where there is network and load that folder, or set HF_HUB_OFFLINE=1 "
        "with a filled HF cache."
    )


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
