"""The latents a sweep's SAE runs steer: from the config, a features.json, or discovery (cached in ``DIR``)."""

from __future__ import annotations

from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from saedetox.discover.features import feature_thresholds, parse_features, read_features, write_features
from saedetox.discover.options import UNGATED, GateOptions
from saedetox.discover.select import discover
from saedetox.discover.sets import discovery_sets
from saedetox.errors import SaedetoxError, StaleRunError
from saedetox.eval.runs.fingerprint import Fingerprint, differences
from saedetox.eval.runs.identity import model_identity, sae_identity
from saedetox.experiments.config import DiscoveryCfg, SweepConfig
from saedetox.model.load import LoadedModel
from saedetox.progress import note
from saedetox.sae.load import load_sae
from saedetox.steering.spec import default_detector


def resolve_features(
    cfg: SweepConfig, lm: LoadedModel, out: Path, overwrite: bool = False, reuse: str | Path | None = None
) -> tuple[list[int], list[float] | None]:
    """The latents SAE runs steer and their gates: from the config, a file, or discovery (cached).

    Discovery's result is cached in ``DIR/features.json`` under a key of everything it depends on
    (the model's and the SAE's content identities, the hook, the discovery settings); a cached
    result with another key is refused unless ``overwrite`` (then discovery runs again). ``reuse``
    (another sweep's folder or its features.json): when ``DIR`` has no features.json yet and that
    file was discovered under the same key, it is copied instead of discovering again.
    """
    if isinstance(cfg.features, list):
        return [int(i) for i in cfg.features], None
    if isinstance(cfg.features, str):
        return parse_features(cfg.features, cfg.sae), feature_thresholds(cfg.features)
    if cfg.discovery is None or cfg.sae is None:
        return [], None
    path = out / "features.json"
    sae = load_sae(cfg.sae, lm)
    key = {"model": model_identity(lm), "sae": sae_identity(sae), "hook": cfg.hook, **discovery_key(cfg.discovery)}
    chat = bool(cfg.evaluation.chat)  # discovery sees the texts as the sweep's prompts are seen
    key.update({"chat": True} if chat else {})
    if not path.exists() and reuse is not None:
        _reuse(Path(reuse), key, path)
    if path.exists():
        try:
            cached = read_features(path)
        except (OSError, UnicodeDecodeError, ValueError):
            cached = {}
        cached = cached if isinstance(cached, dict) else {}
        if cached.get("sweep_key") == key:
            return [int(i) for i in cached["selected"]], cached.get("thresholds")
        if not overwrite:
            old = cached.get("sweep_key") if isinstance(cached.get("sweep_key"), dict) else {}
            labels = {"model": lm.name, "sae": cfg.sae}
            raise StaleRunError(str(path), differences(Fingerprint(old, labels), Fingerprint(key, labels)))
    obj = run_discovery(cfg.discovery, lm, cfg.sae, cfg.hook, cfg.data_dir, chat)
    obj["sweep_key"] = key
    write_features(obj, path)
    if not obj["selected"]:
        raise SaedetoxError("Discovery selected no latent (none reached min_auroc); lower it or change the method.")
    return [int(i) for i in obj["selected"]], obj.get("thresholds")


def _reuse(source: Path, key: dict[str, Any], path: Path) -> None:
    """Copy another sweep's discovery to ``path`` when it was made under ``key`` (else leave it)."""
    source = source / "features.json" if source.is_dir() else source
    try:
        cached = read_features(source) if source.is_file() else None
    except (OSError, UnicodeDecodeError, ValueError):
        cached = None
    if isinstance(cached, dict) and cached.get("sweep_key") == key:
        write_features(cached, path)
        note(f"discovery reused from {source} (same model, SAE, hook and settings)")


def resolve_detector(cfg: SweepConfig, out: Path) -> dict[str, Any] | None:
    """The adaptive-mode detector of the sweep's latents: features.json's ``detector``, if any."""
    if isinstance(cfg.features, str):
        return default_detector(cfg.features)
    path = out / "features.json"
    return default_detector(path) if cfg.discovery is not None and path.exists() else None


def discovery_key(d: DiscoveryCfg) -> dict[str, Any]:
    """The discovery settings a cached features.json was made with; gate settings only where they differ from
    :data:`~saedetox.discover.options.UNGATED` (discovery before the gate settings existed), so a cache made
    then still matches the settings that reproduce it, and one made without a joint gate does not match it."""
    plain = {f.name: getattr(UNGATED, f.name) for f in fields(GateOptions)}
    return {k: v for k, v in asdict(d).items() if k not in plain or v != plain[k]}


def gate_options(d: DiscoveryCfg) -> GateOptions:
    return GateOptions(**{f.name: getattr(d, f.name) for f in fields(GateOptions)})


def run_discovery(
    d: DiscoveryCfg, lm: LoadedModel, sae_name: str, hook: str | None, data_dir: str | None, chat: bool = False
) -> dict[str, Any]:
    """Discovery on the reference world's split (``max_pairs`` caps rank at n, select/test at n // 2)."""
    sae = load_sae(sae_name, lm)
    sets = discovery_sets(data_dir=data_dir)
    return discover(
        lm,
        sae,
        sets,
        method=d.method,
        k=d.k,
        min_auroc=d.min_auroc,
        hook=hook,
        max_pairs=d.max_pairs,
        chat=chat,
        gate=gate_options(d),
        data_dir=data_dir,
    )
