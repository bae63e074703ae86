"""Load SAEs (SAE-Lens registry ``release/sae_id``, a local SAE-Lens folder or ``reference``) with their conventions.

Conventions are taken from the model the SAE is used with (``load_sae(name, lm)``), never guessed:

* **Centring.** SAEs trained on TransformerLens activations of LayerNorm models with
  ``center_writing_weights=True`` (TL's default, and an explicit override of
  ``gpt2-small-res-jb``) see mean-free residual vectors; we encode ``x - x.mean(-1)``.
  RMSNorm models and SAEs trained on plain HF activations are used raw. Without a model (and no
  explicit ``model_uses_layernorm``) nothing is centred, and ``sae.notes`` says so when the
  metadata asks for centring.
* **BOS.** ``metadata.prepend_bos`` tells callers to prepend the BOS token.
* **Normalisation.** ``constant_norm_rescale`` / ``layer_norm`` run inside SAE-Lens'
  encode/decode; the scalings SAE-Lens keeps outside the SAE (``expected_average_only_in``,
  ``covariance_whitening``) are folded where SAE-Lens folds them (:mod:`saedetox.sae.normalise`).
"""

from __future__ import annotations

import difflib
import json
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from saedetox.errors import SaedetoxError
from saedetox.model import hub
from saedetox.model.load import LoadedModel, as_loaded_model
from saedetox.sae.loaded import LoadedSAE
from saedetox.sae.normalise import apply_input_normalisation

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


def centring_requested(metadata: Any) -> bool:
    """Whether the SAE was trained on TransformerLens activations with centred writing weights (TL's default)."""
    kwargs = metadata.get("model_from_pretrained_kwargs") or {}
    if "center_writing_weights" in kwargs:
        return bool(kwargs["center_writing_weights"])
    return metadata.get("model_class_name") in (None, "HookedTransformer", "HookedSAETransformer")


def wants_centring(metadata: Any, model_uses_layernorm: bool) -> bool:
    """TL centres writing weights only on LayerNorm models; HF-trained SAEs are raw."""
    return centring_requested(metadata) and model_uses_layernorm


def _from_sae(sae: Any, source: str, model_uses_layernorm: bool | None) -> LoadedSAE:
    md = sae.cfg.metadata
    hook = md.get("hook_name")
    if not hook:
        raise SaedetoxError(f"SAE {source} has no metadata.hook_name; pass the hook explicitly.")
    if getattr(sae.cfg, "reshape_activations", "none") == "hook_z":
        raise SaedetoxError(
            f"SAE {source} reads attention-head outputs (hook_z); steering supports residual/MLP/attn-out SAEs."
        )
    bad = [n for n, t in sae.state_dict().items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        raise SaedetoxError(f"SAE {source} has NaN or infinite weights ({', '.join(bad)}); re-save or re-download it.")
    pb = md.get("prepend_bos")
    loaded = LoadedSAE(
        sae=sae,
        source=source,
        hook_name=str(hook),
        center=model_uses_layernorm is not None and wants_centring(md, model_uses_layernorm),
        prepend_bos=True if pb is None else bool(pb),
        model_name=md.get("model_name"),
        neuronpedia_id=md.get("neuronpedia_id"),
    )
    if model_uses_layernorm is None and centring_requested(md):
        loaded.notes.append(
            "The SAE's metadata asks for TransformerLens centring, which applies only to LayerNorm models, and no "
            "model was given: activations are encoded raw. Load it with the model: load_sae(name, lm)."
        )
    return loaded


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
    lm: LoadedModel | None = None,
    *,
    device: str | torch.device | None = None,
    dtype: str = "float32",
    model_uses_layernorm: bool | None = None,
) -> LoadedSAE:
    """Load an SAE by local folder, ``reference[/width_N]`` or SAE-Lens ``release/sae_id``, for model ``lm``.

    The model fixes the conventions (centring needs a LayerNorm model; an input scale SAE-Lens
    keeps outside the SAE is estimated on it when no factor is known) and the default device.
    ``model_uses_layernorm`` overrides the model's norm type; without either, nothing is centred.
    """
    if isinstance(lm, (str, torch.device)):
        raise SaedetoxError("load_sae's second argument is the model the SAE is used with; pass the device as device=.")
    lm = as_loaded_model(lm) if lm is not None else None
    if model_uses_layernorm is None and lm is not None:
        model_uses_layernorm = lm.uses_layernorm
    device = str(device if device is not None else lm.device if lm is not None else "cpu")
    path = Path(name).expanduser()
    folder: Path | None = None
    neuronpedia = None
    if name == REFERENCE_PREFIX or name.startswith(REFERENCE_PREFIX + "/"):
        rest = name[len(REFERENCE_PREFIX) + 1 :]
        folder = reference_sae_dir() if not rest else reference_sae_dir().parent / rest
        if not (folder / "cfg.json").exists():
            widths = ", ".join(f"reference/width_{w}" for w in reference_sae_widths()) or "none committed"
            raise SaedetoxError(f"No reference SAE '{name}' (available: reference, {widths}).")
    elif path.exists():
        folder = path
    elif str(name).startswith((".", "/", "~")):
        raise SaedetoxError(f"SAE folder {name} does not exist.")
    if folder is not None:
        sae = _load_local(folder, device, dtype)
    else:
        sae, neuronpedia = _load_registry(name, device, dtype)
    loaded = _from_sae(sae, name, model_uses_layernorm)
    loaded.neuronpedia_id = loaded.neuronpedia_id or neuronpedia
    apply_input_normalisation(loaded, folder, lm)
    return loaded


# --------------------------------------------------------------------------- names (offline)


def registry_neuronpedia_id(name: str) -> str | None:
    """The Neuronpedia id the SAE-Lens registry gives ``release/sae_id`` (its bundled list: offline), if any."""
    release, _, sae_id = name.partition("/")
    entry = registry().get(release) if sae_id else None
    ids = getattr(entry, "neuronpedia_id", None) or {}
    return ids.get(sae_id)


def sae_names(sae: LoadedSAE | str) -> tuple[str, str | None]:
    """An SAE's name (as loaded: ``reference``, a folder or ``release/sae_id``) and its Neuronpedia id, offline.

    The Neuronpedia id comes from the loaded SAE's metadata, a folder's ``cfg.json`` or the SAE-Lens
    registry; the reference SAEs have none.
    """
    if isinstance(sae, LoadedSAE):
        return sae.source, sae.neuronpedia_id
    name = str(sae)
    if name == REFERENCE_PREFIX or name.startswith(REFERENCE_PREFIX + "/"):
        return name, None
    cfg = Path(name).expanduser() / "cfg.json"
    if cfg.is_file():
        try:
            meta = json.loads(cfg.read_text(encoding="utf-8")).get("metadata") or {}
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            meta = {}
        return name, meta.get("neuronpedia_id") if isinstance(meta, dict) else None
    return name, registry_neuronpedia_id(name) if "/" in name else None
