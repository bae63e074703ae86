"""``saedetox sweep CONFIG --out DIR``: many evaluate runs from one YAML, resumable.

The YAML (see ``configs/`` and :class:`SweepConfig`) names the model, the SAE, an optional
discovery step (writes ``DIR/features.json``), the evaluation protocol, the runs (methods ×
modes × tiers/strengths) and an optional feature-splitting study. Each run lives in
``DIR/runs/NAME/`` and is resumable on its own (``evaluate``); a finished run is never redone,
so an interrupted sweep restarted with the same command finishes without duplicating
anything. At the end: ``DIR/metrics.json`` (run name → metrics), ``DIR/manifest.json`` and
``DIR/report.html`` (+ ``report.md``).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from saedetox.errors import SaedetoxError
from saedetox.eval.config import EvalConfig
from saedetox.io import atomic_write_json, atomic_write_text
from saedetox.steering.spec import MODES, parse_tier, tier_label


@dataclass
class DiscoveryCfg:
    method: str = "attribution"
    k: int = 10
    min_auroc: float = 0.6
    max_pairs: int | None = None


@dataclass
class RunGroup:
    method: str
    modes: list[str] = field(default_factory=lambda: ["constant"])
    tiers: list[str | float] = field(default_factory=list)  # named, or fractions of the median residual norm
    strengths: list[float] = field(default_factory=list)
    threshold: float | str = "auto"  # auto = discovery's per-latent gates
    clamp_value: float = 0.0
    positions: str = "all"
    capability: bool = False


@dataclass
class SplittingCfg:
    saes: list[str] = field(default_factory=list)
    mode: str = "constant"
    tier: str = "medium"
    coverage: float = 0.8


@dataclass
class SweepConfig:
    model: str = "reference"
    sae: str | None = "reference"
    hook: str | None = None
    features: list[int] | str | None = None
    discovery: DiscoveryCfg | None = None
    evaluation: EvalConfig = field(default_factory=EvalConfig)
    runs: list[RunGroup] = field(default_factory=list)
    splitting: SplittingCfg | None = None
    dtype: str = "auto"
    device: str = "auto"
    data_dir: str | None = None


def _build(cls: type, raw: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        raise SaedetoxError(f"{where} must be a mapping.")
    names = {f.name for f in fields(cls)}
    unknown = set(raw) - names
    if unknown:
        raise SaedetoxError(f"Unknown key(s) in {where}: {', '.join(sorted(unknown))}.")
    return cls(**raw)


def parse_config(raw: dict[str, Any]) -> SweepConfig:
    """Validate a sweep mapping against the schema; one clear line per problem."""
    from saedetox.methods.base import METHOD_NAMES

    raw = dict(raw or {})
    for key, cls in (("discovery", DiscoveryCfg), ("evaluation", EvalConfig), ("splitting", SplittingCfg)):
        if raw.get(key) is not None:
            raw[key] = _build(cls, raw[key], key)
    groups = raw.get("runs") or []
    if not isinstance(groups, list) or not groups:
        raise SaedetoxError("The sweep config needs a non-empty 'runs' list.")
    raw["runs"] = [_build(RunGroup, g, f"runs[{i}]") for i, g in enumerate(groups)]
    cfg = _build(SweepConfig, raw, "the sweep config")
    for g in cfg.runs:
        if g.method not in METHOD_NAMES:
            raise SaedetoxError(f"Unknown method '{g.method}' in runs: use one of {', '.join(METHOD_NAMES)}.")
        for m in g.modes:
            if m not in MODES:
                raise SaedetoxError(f"Unknown mode '{m}' in runs ({', '.join(MODES)}).")
        g.tiers = [parse_tier(t) for t in g.tiers]
        if g.method == "surgery" and any(not isinstance(t, str) for t in g.tiers):
            raise SaedetoxError("Surgery takes named tiers (low, medium, high) or raw strengths, not numeric tiers.")
    needs_sae = any(g.method == "sae" for g in cfg.runs)
    if needs_sae and cfg.features is None and cfg.discovery is None:
        raise SaedetoxError("SAE runs need 'features' or a 'discovery' section.")
    return cfg


def load_config(path: str | Path) -> SweepConfig:
    p = Path(path)
    if not p.exists():
        raise SaedetoxError(f"Sweep config {p} not found.")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise SaedetoxError(f"{p} is not valid YAML ({str(err).splitlines()[0]}).") from None
    return parse_config(raw)


@dataclass
class PlannedRun:
    name: str
    method: str
    mode: str | None = None
    tier: str | float | None = None
    strength: float | None = None
    threshold: float | str = "auto"
    positions: str = "all"
    capability: bool = False
    sae: str | None = None
    clamp_value: float = 0.0


def plan(cfg: SweepConfig) -> list[PlannedRun]:
    """Expand run groups into named runs (names are unique and stable)."""
    out: list[PlannedRun] = []
    for g in cfg.runs:
        levels: list[tuple[str | None, float | None]] = [(t, None) for t in g.tiers] + [(None, s) for s in g.strengths]
        if g.method in ("none", "prompt", "aura"):
            out.append(PlannedRun(g.method, g.method, capability=g.capability))
            continue
        if not levels:
            levels = [("medium", None)]
        for mode in g.modes if g.method == "sae" else [None]:
            if mode == "clamp":  # clamping has no strength: one run per clamp value
                out.append(
                    PlannedRun(
                        f"sae-clamp-c{g.clamp_value:g}",
                        "sae",
                        "clamp",
                        None,
                        None,
                        g.threshold,
                        g.positions,
                        g.capability,
                        cfg.sae,
                        g.clamp_value,
                    )
                )
                continue
            for tier, strength in levels:
                level = tier_label(tier) if tier is not None else f"a{strength:g}"
                name = f"sae-{mode}-{level}" if g.method == "sae" else f"{g.method}-{level}"
                out.append(
                    PlannedRun(
                        name,
                        g.method,
                        mode,
                        tier,
                        strength,
                        g.threshold,
                        g.positions,
                        g.capability,
                        cfg.sae if g.method == "sae" else None,
                    )
                )
    names = [r.name for r in out]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise SaedetoxError(f"Duplicate run name(s) in the sweep: {', '.join(sorted(dup))}.")
    return out


def run_sweep(cfg: SweepConfig, out: str | Path, config_source: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run (or resume) every planned run; write metrics.json, manifest.json and the report."""
    from saedetox.eval.run import evaluate, versions
    from saedetox.methods.registry import build_method
    from saedetox.model.load import load_model
    from saedetox.steering.spec import Intervention, SteeringSpec

    t0 = time.time()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lm = load_model(cfg.model, dtype=cfg.dtype, device=cfg.device)
    ref = load_model(cfg.evaluation.ref_model, dtype=cfg.dtype, device=cfg.device) if cfg.evaluation.ref_model else None
    ev = cfg.evaluation.validate()
    features, gates = resolve_features(cfg, lm, out)
    results: dict[str, Any] = {}
    planned = plan(cfg)
    contrast = None
    if any(r.method in ("meandiff", "aura", "surgery") for r in planned):
        from saedetox.methods.contrast import default_contrast

        contrast = default_contrast(cfg.data_dir, cfg.discovery.max_pairs if cfg.discovery else None)
    for i, r in enumerate(planned):
        print(f"[{i + 1}/{len(planned)}] {r.name}", flush=True)
        spec = None
        if r.method == "sae":
            iv = Intervention(
                sae=r.sae,
                latents=features,
                hook=cfg.hook,
                mode=r.mode or "constant",
                tier=r.tier,
                strength=r.strength,
                threshold=0.0 if r.threshold == "auto" else float(r.threshold),
                thresholds=gates if r.threshold == "auto" and r.mode == "conditional" else None,
                positions=r.positions,
                clamp_value=r.clamp_value,
            )
            spec = SteeringSpec([iv]).validate()
        options: dict[str, Any] = {"data_dir": cfg.data_dir}
        if r.method in ("meandiff", "surgery"):
            options.update(tier=r.tier, strength=r.strength, hook=cfg.hook or _sae_hook(cfg, lm))
        if r.method in ("meandiff", "aura", "surgery"):
            options["data"] = contrast
        method = build_method(lm, r.method, spec, **options)
        run_cfg = replace(ev, capability=ev.capability if r.capability else ())
        results[r.name] = evaluate(
            lm, out / "runs" / r.name, run_cfg, method, run_name=r.name, ref_lm=ref, data_dir=cfg.data_dir
        )
    splitting = None
    if cfg.splitting and cfg.splitting.saes:
        from saedetox.splitting import run_splitting

        splitting = run_splitting(cfg, lm, replace(ev, capability=()), out, results, ref)
    manifest = {
        "config": config_source or asdict(cfg),
        "versions": versions(),
        "seed": ev.seed,
        "runs": [r.name for r in planned],
        "wall_seconds": round(time.time() - t0, 1),
    }
    atomic_write_json(out / "metrics.json", results)
    atomic_write_json(out / "manifest.json", manifest)
    write_outputs(out, results, manifest, splitting)
    return results


def dry_run(cfg: SweepConfig) -> list[str]:
    """Validate every name offline (SAE-Lens registry, judges, tasks); return what was checked."""
    from saedetox.eval.capability import KNOWN_TASKS
    from saedetox.judges.registry import available_judges
    from saedetox.sae.load import REFERENCE_PREFIX, split_registry_name

    lines = []
    for name in [cfg.sae, *(cfg.splitting.saes if cfg.splitting else [])]:
        if name is None:
            continue
        if name == REFERENCE_PREFIX or name.startswith(REFERENCE_PREFIX + "/") or Path(name).exists():
            lines.append(f"sae {name}: local")
        else:
            release, sae_id = split_registry_name(name)
            lines.append(f"sae {name}: in the SAE-Lens registry (release {release})")
    for j in cfg.evaluation.judges:
        if j not in available_judges():
            raise SaedetoxError(f"Unknown judge '{j}' in the sweep config: use {', '.join(available_judges())}.")
    lines.append(f"judges {', '.join(cfg.evaluation.judges)}: known")
    for t in cfg.evaluation.capability:
        if t not in KNOWN_TASKS:
            raise SaedetoxError(f"Unknown capability task '{t}': use {', '.join(KNOWN_TASKS)}.")
    if cfg.evaluation.capability:
        lines.append(f"capability tasks {', '.join(cfg.evaluation.capability)}: known")
    for m in (cfg.model, cfg.evaluation.ref_model):
        if m is None:
            continue
        local = m == "reference" or Path(m).exists()
        lines.append(f"model {m}: {'local' if local else 'hub name (not checked offline)'}")
    lines.append(f"{len(plan(cfg))} runs planned: {', '.join(r.name for r in plan(cfg))}")
    return lines


def _sae_hook(cfg: SweepConfig, lm: Any) -> str | None:
    if cfg.sae is None:
        return None
    from saedetox.sae.load import load_sae

    return load_sae(cfg.sae, model_uses_layernorm=lm.uses_layernorm).hook_name


def resolve_features(cfg: SweepConfig, lm: Any, out: Path) -> tuple[list[int], list[float] | None]:
    """The latents SAE runs steer and their gates: from the config, a file, or discovery (cached)."""
    if isinstance(cfg.features, list):
        return [int(i) for i in cfg.features], None
    if isinstance(cfg.features, str):
        from saedetox.discover.features import feature_thresholds, parse_features

        return parse_features(cfg.features), feature_thresholds(cfg.features)
    if cfg.discovery is None or cfg.sae is None:
        return [], None
    path = out / "features.json"
    key = {"sae": cfg.sae, "hook": cfg.hook, **asdict(cfg.discovery)}
    if path.exists():
        cached = json.loads(path.read_text())
        if cached.get("sweep_key") == key:
            return [int(i) for i in cached["selected"]], cached.get("thresholds")
    obj = run_discovery(cfg.discovery, lm, cfg.sae, cfg.hook, cfg.data_dir)
    obj["sweep_key"] = key
    atomic_write_json(path, obj)
    if not obj["selected"]:
        raise SaedetoxError("Discovery selected no latent (none reached min_auroc); lower it or change the method.")
    return [int(i) for i in obj["selected"]], obj.get("thresholds")


def run_discovery(d: DiscoveryCfg, lm: Any, sae_name: str, hook: str | None, data_dir: str | None) -> dict[str, Any]:
    from saedetox.discover.select import discover
    from saedetox.discover.sets import discovery_sets
    from saedetox.sae.load import load_sae

    sae = load_sae(sae_name, device=lm.device, model_uses_layernorm=lm.uses_layernorm)
    sets = discovery_sets(data_dir=data_dir)
    if d.max_pairs is not None:
        n = d.max_pairs
        sets.toxic, sets.clean = sets.toxic[:n], sets.clean[:n]
        sets.heldout_toxic, sets.heldout_clean = sets.heldout_toxic[: n // 2], sets.heldout_clean[: n // 2]
        sets.description["max_pairs"] = n
    return discover(
        lm,
        sae,
        sets.toxic,
        sets.clean,
        sets.heldout_toxic,
        sets.heldout_clean,
        method=d.method,
        k=d.k,
        min_auroc=d.min_auroc,
        paired=sets.paired,
        hook=hook,
        data=sets.description,
    )


def write_outputs(
    out: Path, results: dict[str, Any], manifest: dict[str, Any], splitting: dict[str, Any] | None
) -> None:
    from saedetox.report.markdown import markdown_summary
    from saedetox.report.write import write_report

    features = json.loads((out / "features.json").read_text()) if (out / "features.json").exists() else None
    write_report(results, out / "report.html", features=features, splitting=splitting, manifest=manifest)
    atomic_write_text(out / "report.md", markdown_summary(results, splitting=splitting))
