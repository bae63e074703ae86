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

import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from saedetox.discover.features import read_features
from saedetox.errors import SaedetoxError
from saedetox.eval.capability import KNOWN_TASKS
from saedetox.eval.run import evaluate, versions
from saedetox.experiments.config import SweepConfig
from saedetox.experiments.features import resolve_detector, resolve_features
from saedetox.experiments.plan import PlannedRun, plan
from saedetox.experiments.splitting import run_splitting
from saedetox.io import atomic_write_json, atomic_write_text
from saedetox.judges.registry import available_judges
from saedetox.methods.base import Method
from saedetox.methods.contrast import ContrastData, default_contrast
from saedetox.methods.registry import build_method
from saedetox.model.load import LoadedModel, load_model
from saedetox.report.curves import ComparisonConfig
from saedetox.report.markdown import markdown_summary
from saedetox.report.write import write_report
from saedetox.sae.load import REFERENCE_PREFIX, load_sae, split_registry_name
from saedetox.steering.spec import Intervention, SteeringSpec, default_gates


def run_sweep(cfg: SweepConfig, out: str | Path, config_source: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run (or resume) every planned run; write metrics.json, manifest.json and the report."""
    t0 = time.time()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lm = load_model(cfg.model, dtype=cfg.dtype, device=cfg.device)
    ref = load_model(cfg.evaluation.ref_model, dtype=cfg.dtype, device=cfg.device) if cfg.evaluation.ref_model else None
    ev = cfg.evaluation.validate()
    features, gates = resolve_features(cfg, lm, out)
    detector = resolve_detector(cfg, out)  # for adaptive SAE runs
    results: dict[str, Any] = {}
    planned = plan(cfg)
    contrast = None
    if any(r.method in ("meandiff", "aura", "surgery") for r in planned):
        contrast = default_contrast(cfg.data_dir, cfg.discovery.max_pairs if cfg.discovery else None)
    for i, r in enumerate(planned):
        print(f"[{i + 1}/{len(planned)}] {r.name}", flush=True)
        method = _method(cfg, lm, r, features, gates, contrast, detector)
        run_cfg = replace(ev, capability=ev.capability if r.capability else ())
        results[r.name] = evaluate(
            lm, out / "runs" / r.name, run_cfg, method, run_name=r.name, ref_lm=ref, data_dir=cfg.data_dir
        )
    splitting = None
    if cfg.splitting and cfg.splitting.saes:
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
    write_outputs(out, results, manifest, splitting, cfg.comparison)
    return results


def _method(
    cfg: SweepConfig,
    lm: LoadedModel,
    r: PlannedRun,
    features: list[int],
    gates: list[float] | None,
    contrast: ContrastData | None,
    detector: dict[str, Any] | None = None,
) -> Method:
    """The method one planned run evaluates: its steering spec (SAE runs) or its baseline."""
    spec = None
    if r.method == "sae":
        mode = r.mode or "constant"
        tau, taus = default_gates(mode, gates) if r.threshold == "auto" else (float(r.threshold), None)
        iv = Intervention(
            sae=r.sae,
            latents=features,
            hook=cfg.hook,
            mode=mode,
            tier=r.tier,
            strength=r.strength,
            push=r.push,
            threshold=tau,
            thresholds=taus,
            positions=r.positions,
            clamp_value=r.clamp_value,
            detector=detector if mode == "adaptive" else None,
        )
        spec = SteeringSpec([iv]).validate()
    options: dict[str, Any] = {"data_dir": cfg.data_dir}
    if r.method in ("meandiff", "surgery"):
        options.update(tier=r.tier, strength=r.strength, hook=cfg.hook or _sae_hook(cfg, lm))
    if r.method == "meandiff":
        options.update(mode=r.mode or "constant", push=r.push)
    if r.method in ("meandiff", "aura", "surgery"):
        options["data"] = contrast
    return build_method(lm, r.method, spec, **options)


def dry_run(cfg: SweepConfig) -> list[str]:
    """Validate every name offline (SAE-Lens registry, judges, tasks); return what was checked."""
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


def _sae_hook(cfg: SweepConfig, lm: LoadedModel) -> str | None:
    if cfg.sae is None:
        return None
    return load_sae(cfg.sae, model_uses_layernorm=lm.uses_layernorm).hook_name


def write_outputs(
    out: Path,
    results: dict[str, Any],
    manifest: dict[str, Any],
    splitting: dict[str, Any] | None,
    comparison: ComparisonConfig | None = None,
) -> None:
    """``DIR/report.html`` (with the features and splitting study when there are) and ``DIR/report.md``."""
    features = read_features(out / "features.json") if (out / "features.json").exists() else None
    write_report(
        results, out / "report.html", features=features, splitting=splitting, manifest=manifest, comparison=comparison
    )
    atomic_write_text(out / "report.md", markdown_summary(results, splitting=splitting, comparison=comparison))
