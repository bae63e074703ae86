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

import torch
import yaml

from saedetox.discover.features import read_features
from saedetox.eval.config import EvalConfig
from saedetox.eval.run import evaluate, prepare, versions
from saedetox.eval.runs.fingerprint import texts_digest
from saedetox.eval.runs.push_calibration import Uncalibrated, pin_calibration
from saedetox.eval.sampler.backends import HF
from saedetox.eval.sampler.noise import reuse_noise
from saedetox.experiments.compatibility import check_features_against
from saedetox.experiments.conditions import CALIBRATION, refined_levels
from saedetox.experiments.config import SweepConfig, load_config, parse_config
from saedetox.experiments.features import resolve_detector, resolve_features
from saedetox.experiments.plan import PlannedRun, plan, run_spec
from saedetox.experiments.robustness import precheck_attacked, run_attacked, select_levels, write_robustness
from saedetox.experiments.secondary import precheck_secondary, run_secondary
from saedetox.experiments.splitting import run_splitting
from saedetox.experiments.validate import check_sweep, run_eval_config
from saedetox.experiments.workers import groups_of, run_all, worker_count
from saedetox.io import atomic_write_json, atomic_write_text, ensure_unlocked, folder_lock
from saedetox.methods.base import Method
from saedetox.methods.contrast import ContrastData, default_contrast
from saedetox.methods.registry import build_method, get_method, train_judge_for
from saedetox.methods.shared_pass import prefetch_pooled
from saedetox.model.load import LoadedModel, load_model
from saedetox.progress import note
from saedetox.report.curves import ComparisonConfig
from saedetox.report.markdown import markdown_summary
from saedetox.report.study_sections import studies_markdown
from saedetox.report.write import write_report
from saedetox.sae.load import load_sae


def run_sweep(
    cfg: SweepConfig,
    out: str | Path,
    config_source: dict[str, Any] | None = None,
    overwrite: bool | None = None,
    reuse_discovery: str | Path | None = None,
) -> dict[str, Any]:
    """Run (or resume) every planned run; write metrics.json, manifest.json and the report.

    Everything :func:`check_sweep` checks (the same as ``--dry-run``) and every existing run's
    model-independent settings are checked before a model is loaded or a folder created. One
    writer per sweep folder; each run's folder is locked and fingerprinted by ``evaluate``.
    ``overwrite`` (default: the config's ``overwrite``) replaces runs made with other settings.
    ``reuse_discovery``: another sweep's folder whose discovery is copied when made under the same
    key (``experiments.features.resolve_features``).
    """
    t0 = time.time()
    out = Path(out)
    overwrite = cfg.overwrite if overwrite is None else overwrite
    check_sweep(cfg, out)
    ev = cfg.evaluation
    planned = plan(cfg)
    for r in planned:  # a stale run is refused now, not after an hour of the runs before it
        run_cfg = run_eval_config(ev, r.capability)
        prepare(run_cfg, out / "runs" / r.name, cfg.data_dir, overwrite)
    precheck_attacked(cfg, planned, out, overwrite)
    precheck_secondary(cfg, planned, out, overwrite)
    ensure_unlocked(out, "sweep")
    lm = load_model(cfg.model, dtype=cfg.dtype, device=cfg.device)
    ref = load_model(ev.ref_model, dtype=cfg.dtype, device=cfg.device) if ev.ref_model else None
    with folder_lock(out, "sweep"), reuse_noise():  # every run samples the same batches: draw their noise once
        out.mkdir(parents=True, exist_ok=True)
        features, gates = resolve_features(cfg, lm, out, overwrite, reuse_discovery)
        detector = resolve_detector(cfg, out)  # for adaptive SAE runs
        contrast, extra = None, {}
        if any(_contrast(r) for r in planned):
            contrast = default_contrast(cfg.data_dir, cfg.discovery.max_pairs if cfg.discovery else None)
            extra = {"contrast": texts_digest(contrast.toxic + ["\x00"] + contrast.clean)}
            prefetch_pooled(lm, contrast, {r.method for r in planned})  # AurA + Surgery: one pass each side, not two
        methods = {}
        for r in planned:  # built here, before any worker starts: directions and factors are learnt once
            methods[r.name] = _method(cfg, lm, r, features, gates, contrast, detector)
            if r.sae is not None and isinstance(cfg.features, str):
                check_features_against(methods[r.name], cfg.features, cfg.sae)
        pristine = {name: Uncalibrated.of(m) for name, m in methods.items()}  # state for each run's fingerprint
        position = {r.name: i for i, r in enumerate(planned)}
        last: dict[str, dict[str, Any]] = {}  # curve -> its last result in this process (push calibration start)

        def run_in(r: PlannedRun, run_ev: EvalConfig, folder: Path) -> dict[str, Any]:
            note(
                f"[{position[r.name] + 1}/{len(planned)}] {r.name}"
                + (f" under {run_ev.attack}" if run_ev.attack else "")
                + (f" on {run_ev.prompts}" if run_ev.prompts != ev.prompts else "")
            )
            method = methods[r.name]
            pristine[r.name].restore(method)  # a level run before in this process left its calibration on it
            previous = last.get(r.curve, {}) if r.curve else {}
            method.calibration_start = warm_start(method, previous.get("config", {}).get("push_calibration"))
            clean_folder = out / "runs" / r.name
            if folder != clean_folder:  # another condition: the clean run's push levels, whichever process resumes
                pin_calibration(method, run_ev, clean_folder / CALIBRATION, folder / CALIBRATION)
            result = evaluate(
                lm,
                folder,
                run_ev,
                method,
                run_name=r.name,
                ref_lm=ref,
                run_config={
                    **(extra if _contrast(r) else {}),
                    "curve": r.curve,
                    "level": r.level,
                },
                data_dir=cfg.data_dir,
                overwrite=overwrite,
            )
            if r.curve and folder == clean_folder:
                last[r.curve] = result
            return result

        gate_file = out / "features.json"  # discovery's gate, measured on the unsteered and the gated runs

        def run_one(r: PlannedRun) -> dict[str, Any]:
            run_ev = run_eval_config(ev, r.capability)
            if run_ev.gate_features is None and gate_file.is_file() and (r.method == "none" or r.mode == "conditional"):
                run_ev = replace(run_ev, gate_features=str(gate_file))
            return run_in(r, run_ev, out / "runs" / r.name)

        # the first run here (its sampling noise is then every worker's), the rest
        # in `workers` processes when asked (experiments/workers.py): the same tokens either way
        def run_many(runs: list[PlannedRun], fn: Any) -> dict[str, dict[str, Any]]:
            # vLLM runs one engine (itself parallel) shared by the runs: no forked workers beside it
            n_workers = worker_count(cfg.workers, lm.device, len(groups_of(runs))) if ev.backend == HF else 1
            return run_all(runs, fn, n_workers, torch.get_num_threads())

        results = {planned[0].name: run_one(planned[0])}
        results.update(run_many(planned[1:], run_one))

        rb = cfg.robustness
        if rb is not None and rb.refine and rb.ppl_ratio is not None:  # one more clean level per curve, by the ratio
            refined = refined_levels([e for e in rb.runs if e not in position], rb.ppl_ratio, planned, results)
            for r in refined:  # built before the workers fork, as every other run's method
                methods[r.name] = _method(cfg, lm, r, features, gates, contrast, detector)
                pristine[r.name] = Uncalibrated.of(methods[r.name])
                position[r.name] = len(position)
            results.update(run_many(refined, run_one))
            planned = planned + refined
        results = {r.name: results[r.name] for r in planned}
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
        studies: dict[str, Any] = {}
        if rb is not None:  # the named runs again under each attack, after every clean run
            rb_resolved, selection = select_levels(rb, planned, results)  # from the clean runs only
            attacked = run_attacked(cfg, rb_resolved, planned, out, run_in, run_many)
            studies["robustness"] = write_robustness(cfg, rb_resolved, selection, out, results, attacked)
        if cfg.secondary is not None:  # the named runs on another prompt set, at the levels the clean runs fixed
            studies["secondary"] = run_secondary(cfg, planned, out, results, run_in, run_many)
        if studies:
            manifest["wall_seconds"] = round(time.time() - t0, 1)
            atomic_write_json(out / "manifest.json", manifest)
            write_outputs(out, results, manifest, splitting, cfg.comparison, **studies)
    return results


def warm_start(method: Method, last: dict[str, Any] | None) -> list[float] | None:
    """Where ``method``'s push calibration starts: the curve's last calibrated α × (new target / its target).

    ``last`` is that run's ``config.push_calibration`` record; None (or a record that does not
    match the method's calibrated interventions) leaves the closed-form start.
    """
    st = method.steerer
    if st is None or not last:
        return None
    targets = [r.target_push for r in st.resolved if r.needs_calibration]
    old_t, old_a = last.get("target") or [], last.get("alpha") or []
    if not targets or len(old_t) != len(targets) or len(old_a) != len(targets):
        return None
    if not all(t and a and t > 0 and a > 0 for t, a in zip(old_t, old_a, strict=True)):
        return None
    return [a * t / ot for a, t, ot in zip(old_a, targets, old_t, strict=True)]  # type: ignore[operator]


def _method(
    cfg: SweepConfig,
    lm: LoadedModel,
    r: PlannedRun,
    features: list[int],
    gates: list[float] | None,
    contrast: ContrastData | None,
    detector: dict[str, Any] | None = None,
) -> Method:
    """The method one planned run evaluates, with the options its method declares (``methods.registry``)."""
    info = get_method(r.method)
    options: dict[str, Any] = {"data_dir": cfg.data_dir}
    if info.strength:
        options.update(tier=r.tier, strength=r.strength)
    if info.hook:
        options["hook"] = cfg.hook or _sae_hook(cfg, lm)
    if info.modes and "spec" not in info.needs:  # the steering spec carries an SAE run's mode and push
        options.update(mode=r.mode or info.modes[0], push=r.push)
        if r.pooling is not None:
            options["pooling"] = r.pooling
    if "contrast" in info.needs:
        options["data"] = contrast
    if info.learns_from_judge:
        options["train_judge"] = train_judge_for(r.train_judge, cfg.evaluation.judges)
    return build_method(lm, r.method, run_spec(cfg, r, features, gates, detector), **options)


def _contrast(r: PlannedRun) -> bool:
    """Whether the run's method learns from the toxic/clean contrast texts."""
    return "contrast" in get_method(r.method).needs


def dry_run(cfg: SweepConfig, out: str | Path | None = None) -> list[str]:
    """Validate everything offline, exactly as a real run does before it starts; return what was checked."""
    return check_sweep(cfg, out)


def _sae_hook(cfg: SweepConfig, lm: LoadedModel) -> str | None:
    if cfg.sae is None:
        return None
    return load_sae(cfg.sae, lm).hook_name


def write_outputs(
    out: Path,
    results: dict[str, Any],
    manifest: dict[str, Any],
    splitting: dict[str, Any] | None,
    comparison: ComparisonConfig | None = None,
    robustness: dict[str, Any] | None = None,
    secondary: dict[str, Any] | None = None,
) -> None:
    """``DIR/report.html`` (with the features and splitting study when there are) and ``DIR/report.md``.

    ``robustness`` and ``secondary``: the condition studies' results (``robustness.json``,
    ``secondary.json``), shown as sections of both.
    """
    features = read_features(out / "features.json") if (out / "features.json").exists() else None
    studies = {"robustness": robustness, "secondary": secondary}
    write_report(
        results,
        out / "report.html",
        features=features,
        splitting=splitting,
        manifest=manifest,
        comparison=comparison,
        **studies,
    )
    md = markdown_summary(results, splitting=splitting, comparison=comparison)
    atomic_write_text(out / "report.md", md.rstrip("\n") + "\n" + studies_markdown(**studies))


def sweep(
    config: str | Path | dict[str, Any] | SweepConfig, out: str | Path, overwrite: bool | None = None
) -> dict[str, Any]:
    """``saedetox sweep`` from Python: ``config`` is a sweep YAML path, its mapping or a :class:`SweepConfig`.

    Returns ``{run name: metrics}``; writes ``OUT/metrics.json``, ``manifest.json`` and the report.
    """
    if isinstance(config, SweepConfig):
        return run_sweep(config, out, overwrite=overwrite)
    if isinstance(config, dict):
        return run_sweep(parse_config(config), out, config_source=config, overwrite=overwrite)
    cfg = load_config(config)  # checks the file first: one clear line for a missing or malformed one
    source = yaml.safe_load(Path(config).read_text(encoding="utf-8"))
    return run_sweep(cfg, out, config_source=source, overwrite=overwrite)
