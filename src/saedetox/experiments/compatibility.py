"""Offline agreement of a model, an SAE, a hook and a features.json, before anything is loaded.

What can be known without a download is checked; what cannot is said. A model's layer count and
width come from its ``config.json`` (a local folder, the reference world, or the HF cache for a
hub name). An SAE's ``d_in``, ``d_sae`` and hook come from its ``cfg.json`` (local, reference, or
a registry SAE whose files are in the HF cache), or from SAE-Lens' own config getter where that
needs no download (Gemma Scope derives them from the SAE id). An SAE-Lens registry entry names
the model it was trained on; when both names are ones TransformerLens knows, they must agree.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from saedetox.errors import SaedetoxError
from saedetox.eval.runs.identity import steerer_of
from saedetox.methods.base import Method
from saedetox.model.load import REFERENCE_NAME, reference_model_dir
from saedetox.model.sites import HOOK_RE
from saedetox.sae.load import REFERENCE_PREFIX, reference_sae_dir, registry, split_registry_name
from saedetox.steering.steerer import Steerer

#: SAE-Lens config getters that derive the config from the SAE id alone (no download)
OFFLINE_GETTERS = ("gemma_2",)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _cached(repo_id: str, filename: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache  # deferred: only hub names need the cache

    try:
        hit = try_to_load_from_cache(repo_id, filename)
    except Exception:  # noqa: BLE001 - an invalid repo id is simply not cached
        return None
    return Path(hit) if isinstance(hit, str) else None


def model_header(name: str) -> dict[str, Any] | None:
    """``{"n_layers", "d_model", "where"}`` from the model's config.json, or None when it is not available offline."""
    local = reference_model_dir() if name == REFERENCE_NAME else Path(name).expanduser()
    if local.is_dir():
        cfg, where = _read_json(local / "config.json"), "local"
    else:
        path = _cached(name, "config.json")
        cfg, where = (_read_json(path), "HF cache") if path else (None, "")
    if cfg is None:
        return None
    cfg = cfg.get("text_config") or cfg
    layers = next((cfg[k] for k in ("num_hidden_layers", "n_layer", "num_layers") if isinstance(cfg.get(k), int)), None)
    width = next((cfg[k] for k in ("hidden_size", "n_embd", "d_model") if isinstance(cfg.get(k), int)), None)
    return {"n_layers": layers, "d_model": width, "where": where}


def _sae_cfg_fields(cfg: dict[str, Any]) -> dict[str, Any]:
    md = cfg.get("metadata") if isinstance(cfg.get("metadata"), dict) else {}
    return {
        "d_in": cfg.get("d_in"),
        "d_sae": cfg.get("d_sae"),
        # pre-6.0 SAE-Lens configs (e.g. gpt2-small-res-jb's) name it hook_point, as sae_lens' loader maps it
        "hook": md.get("hook_name") or cfg.get("hook_name") or cfg.get("hook_point"),
        "model_name": md.get("model_name") or cfg.get("model_name"),
    }


def sae_header(name: str) -> dict[str, Any]:
    """What is known offline about an SAE: ``kind`` (reference, local, registry), ``d_in``, ``d_sae``,
    ``hook`` and, for registry SAEs, ``registry_model`` (None where unknown). Unknown names fail here."""
    if name == REFERENCE_PREFIX or name.startswith(REFERENCE_PREFIX + "/"):
        rest = name[len(REFERENCE_PREFIX) + 1 :]
        folder = reference_sae_dir() if not rest else reference_sae_dir().parent / rest
        cfg = _read_json(folder / "cfg.json")
        if cfg is None:
            raise SaedetoxError(f"No reference SAE '{name}'.")
        return {"kind": "reference", "path": str(folder.resolve()), **_sae_cfg_fields(cfg)}
    path = Path(name).expanduser()
    if path.exists():
        cfg = _read_json(path / "cfg.json")
        if cfg is None:
            raise SaedetoxError(f"{path} is not an SAE-Lens folder: it needs a readable cfg.json.")
        return {"kind": "local", "path": str(path.resolve()), **_sae_cfg_fields(cfg)}
    if name.startswith((".", "/", "~")):
        raise SaedetoxError(f"SAE folder {name} does not exist.")
    release, sae_id = split_registry_name(name)
    entry = registry()[release]
    out = {"kind": "registry", "registry_model": entry.model, "d_in": None, "d_sae": None, "hook": None}
    out.update({k: v for k, v in _registry_cfg(sae_id, entry).items() if v is not None})
    return out


def _registry_cfg(sae_id: str, entry: Any) -> dict[str, Any]:
    """A registry SAE's config where it is known without a download, else {}."""
    folder = entry.saes_map[sae_id]
    getter = entry.conversion_func
    if getter is None:  # SAE-Lens format: cfg.json in the hub repo, known only when cached
        path = _cached(entry.repo_id, f"{folder}/cfg.json")
        cfg = _read_json(path) if path else None
        return {**_sae_cfg_fields(cfg), **(entry.config_overrides or {})} if cfg else {}
    if getter in OFFLINE_GETTERS:
        from sae_lens.loading.pretrained_sae_loaders import (  # deferred: sae_lens imports transformer_lens
            NAMED_PRETRAINED_SAE_CONFIG_GETTERS,
        )

        try:
            cfg = NAMED_PRETRAINED_SAE_CONFIG_GETTERS[getter](entry.repo_id, folder, "cpu", False, None)
        except Exception:  # noqa: BLE001 - an id the getter cannot parse is simply unknown here
            return {}
        return _sae_cfg_fields(cfg)
    return {}


def official_name(name: str) -> str | None:
    """TransformerLens' official hub name for a model name or alias (``gpt2-small`` → ``gpt2``), or None."""
    from transformer_lens.loading_from_pretrained import get_official_model_name  # deferred: heavy import

    for candidate in (name, name.rsplit("/", 1)[-1]):
        try:
            return str(get_official_model_name(candidate))
        except Exception:  # noqa: BLE001 - TL raises ValueError for names it does not know
            continue
    return None


def check_agreement(model: str, sae: str, hook: str | None = None) -> list[str]:
    """Refuse (one line) an SAE that cannot fit ``model``; return what was checked and what could not be."""
    sh = sae_header(sae)
    mh = model_header(model)
    lines = []
    if sh["kind"] == "registry":
        trained = sh["registry_model"]
        if model == REFERENCE_NAME:
            raise SaedetoxError(
                f"SAE {sae} was trained on {trained}, not on the reference model; "
                "use a reference SAE (reference, reference/width_N) or set the model to "
                f"{official_name(trained) or trained}."
            )
        a, b = official_name(trained), official_name(model)
        if a and b and a != b:
            raise SaedetoxError(f"SAE {sae} was trained on {trained} ({a}), but the model is {model} ({b}).")
        lines.append(
            f"sae {sae}: trained on {trained}" + (", matches the model" if a and b else "; model name not comparable")
        )
    used = hook or sh["hook"]
    if used:
        m = HOOK_RE.match(used)
        if not m:
            raise SaedetoxError(
                f"Unknown hook '{used}': use blocks.L.hook_resid_pre, hook_resid_post, hook_attn_out or hook_mlp_out."
            )
        if mh and mh["n_layers"] is not None:
            if int(m.group(1)) >= mh["n_layers"]:
                raise SaedetoxError(f"Hook '{used}' names layer {m.group(1)}, but {model} has {mh['n_layers']} layers.")
            lines.append(f"hook {used}: layer exists in {model}")
        else:
            lines.append(f"hook {used}: layer not checked offline ({model}'s config is not available offline)")
    else:
        lines.append(f"sae {sae}: hook not known offline (its cfg.json is not in the HF cache); checked when it loads")
    if sh["d_in"] is not None and mh and mh["d_model"] is not None:
        if int(sh["d_in"]) != int(mh["d_model"]):
            raise SaedetoxError(
                f"SAE {sae} has d_in {sh['d_in']} but {model} has width {mh['d_model']}: "
                "this SAE was trained for another model."
            )
        lines.append(f"sae {sae}: d_in {sh['d_in']} = model width")
    else:
        missing = "the SAE's d_in" if sh["d_in"] is None else f"{model}'s width"
        lines.append(f"sae {sae}: d_in not checked offline ({missing} is not available without a download)")
    return lines


def check_features_file(features: str | Path, sae: str, d_sae: int | None = None) -> None:
    """Refuse a features.json recorded for another SAE (its ``sae`` and ``d_sae`` against the SAE in use)."""
    data = _read_json(Path(features))
    if not data or not data.get("sae"):
        return  # a plain list of indices records no SAE
    recorded, rec_d = str(data["sae"]), data.get("d_sae")
    if d_sae is None:
        d_sae = sae_header(sae).get("d_sae")
    if rec_d is not None and d_sae is not None and int(rec_d) != int(d_sae):
        raise SaedetoxError(
            f"{features} was recorded for SAE {recorded} (d_sae {rec_d}), but this run steers {sae} "
            f"(d_sae {d_sae}): its latent indices would name other latents. Run discovery for {sae}."
        )
    if not _same_sae(recorded, sae):
        raise SaedetoxError(
            f"{features} was recorded for SAE {recorded}, but this run steers {sae}: "
            f"its latent indices would name other latents. Run discovery for {sae}."
        )


def _same_sae(recorded: str, used: str) -> bool:
    if recorded == used:
        return True
    try:
        a, b = sae_header(recorded), sae_header(used)
    except SaedetoxError:
        return True  # the recorded folder has moved (its d_sae, when recorded, was checked above)
    if a["kind"] == "registry" or b["kind"] == "registry":
        return False  # different registry ids, or a registry id against a local folder
    if a["path"] == b["path"]:
        return True
    # two local folders: the same SAE if their config and weights file agree
    pa, pb = Path(a["path"]), Path(b["path"])
    wa, wb = pa / "sae_weights.safetensors", pb / "sae_weights.safetensors"
    same_cfg = _read_json(pa / "cfg.json") == _read_json(pb / "cfg.json")
    return same_cfg and wa.is_file() and wb.is_file() and _ends(wa) == _ends(wb)


def _ends(path: Path, n: int = 1 << 20) -> tuple[int, bytes, bytes]:
    """Size, first and last MiB of a file: enough to tell two SAE weight files apart without reading gigabytes."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(n)
        fh.seek(max(0, size - n))
        return size, head, fh.read(n)


def check_features_against(method: Method | Steerer, features: str | Path, sae: str) -> None:
    """After the SAE is loaded: :func:`check_features_file` with the loaded SAE's true ``d_sae``."""
    steerer = method if isinstance(method, Steerer) else steerer_of(method)
    for r in steerer.resolved if steerer is not None else []:
        if r.sae is not None:
            check_features_file(features, sae, r.sae.d_sae)
