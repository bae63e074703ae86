"""Everything a sweep checks before it loads a model or creates a folder; ``--dry-run`` runs exactly this.

:func:`check_sweep` is called by :func:`~saedetox.experiments.sweep.run_sweep` before any work and
by :func:`~saedetox.experiments.sweep.dry_run` alone, so a config that passes a dry run passes the
same checks in a real run and one that fails, fails both.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from saedetox.discover.features import parse_features
from saedetox.errors import SaedetoxError
from saedetox.eval.config import EvalConfig
from saedetox.eval.run import clean_texts, load_prompts
from saedetox.eval.runs.judge_scores import check_judges
from saedetox.eval.sampler.backends import check_available
from saedetox.experiments.compatibility import check_agreement, check_features_file, model_header
from saedetox.experiments.config import SweepConfig
from saedetox.experiments.plan import plan, run_spec
from saedetox.io import check_output_dir
from saedetox.methods.registry import get_method
from saedetox.model.load import REFERENCE_NAME
from saedetox.steering.spec import default_detector

PLACEHOLDER_DETECTOR = {"kind": "latents", "coef": [0.0], "intercept": 0.0, "scale": [1.0], "pooling": "max"}


def check_sweep(cfg: SweepConfig, out: str | Path | None = None) -> list[str]:
    """Validate a sweep offline (one clear line for the first problem); return what was checked."""
    lines = []
    if out is not None:
        check_output_dir(out)
        lines.append(f"output folder {out}: writable")
    ev = cfg.evaluation.validate()
    check_available(ev.backend)
    check_judges(ev.judges)
    lines.append(f"judges {', '.join(ev.judges)}: available")
    if ev.capability:
        lines.append(f"capability tasks {', '.join(ev.capability)} (limit {ev.capability_limit}): known")
    prompts = load_prompts(ev, cfg.data_dir)
    lines.append(f"prompts {ev.prompts}: {len(prompts)} selected")
    if ev.clean_texts:
        lines.append(f"clean texts: {len(clean_texts(ev, cfg.data_dir))} of {ev.clean_texts} asked")
    for m in (cfg.model, ev.ref_model):
        if m is not None:
            lines.append(_model_line(m))
    for name in [cfg.sae, *(cfg.splitting.saes if cfg.splitting else [])]:
        if name is not None:
            lines += check_agreement(cfg.model, name, cfg.hook)
    if isinstance(cfg.features, str):
        n = len(parse_features(cfg.features, cfg.sae))
        if cfg.sae is not None:
            check_features_file(cfg.features, cfg.sae)
        lines.append(f"features {cfg.features}: {n} latents" + (f", recorded for {cfg.sae}" if cfg.sae else ""))
    runs = plan(cfg)
    for r in runs:
        if r.mode == "adaptive" and isinstance(cfg.features, str) and default_detector(cfg.features) is None:
            if "spec" in get_method(r.method).needs:
                raise SaedetoxError(f"Adaptive SAE runs need a detector, and {cfg.features} has none.")
        # the real latents, gates and detector come from discovery's features.json when the run starts
        run_spec(cfg, r, [0], detector=PLACEHOLDER_DETECTOR)
    lines.append(f"{len(runs)} runs planned: {', '.join(r.name for r in runs)}")
    if cfg.comparison is not None:
        lines.append(_check_comparison(cfg, runs, ev.judges))
    if cfg.robustness is not None:
        lines.append(_check_robustness(cfg, runs, ev.judges))
    if cfg.secondary is not None:
        lines.append(_check_secondary(cfg, runs, ev.judges))
    return lines


def _check_secondary(cfg: SweepConfig, runs: list, judges: tuple[str, ...]) -> str:
    """The secondary question names runs or curves of this sweep (curves: with a ratio and a `none` run)."""
    sc = cfg.secondary
    assert sc is not None
    names = {r.name for r in runs}
    curves = {r.curve for r in runs if r.curve is not None}
    unknown = [r for r in sc.runs if r not in names | curves]
    if unknown:
        raise SaedetoxError(f"secondary.runs names no run or curve of this sweep: {', '.join(unknown)}.")
    named_curves = [r for r in sc.runs if r not in names]
    if named_curves and (sc.ppl_ratio is None or not any(r.method == "none" for r in runs)):
        raise SaedetoxError(
            f"secondary.runs names curve(s) {', '.join(named_curves)}: set secondary.ppl_ratio and run `none`."
        )
    if sc.judge is not None and sc.judge not in judges:
        raise SaedetoxError(f"secondary.judge '{sc.judge}' is not among the evaluation's judges ({', '.join(judges)}).")
    if cfg.evaluation.attack is not None:
        raise SaedetoxError("A sweep with a secondary question runs its clean runs clean: drop evaluation.attack.")
    n = len(load_prompts(replace(cfg.evaluation, prompts=sc.prompts, n_prompts=sc.n_prompts), cfg.data_dir))
    pairs = ", ".join(f"{a} vs {b}" for a, b in sc.pairs)
    return f"secondary: {len(sc.runs)} runs on {sc.prompts} ({n} prompts); {pairs}, judge {sc.judge or judges[0]}"


def _check_robustness(cfg: SweepConfig, runs: list, judges: tuple[str, ...]) -> str:
    """The robustness section names runs of this sweep, an SAE primary, a baseline and a judge it scores with."""
    rb = cfg.robustness
    assert rb is not None
    if cfg.evaluation.attack is not None:
        raise SaedetoxError("A sweep with a robustness section runs its clean runs clean: drop evaluation.attack.")
    family = {r.name: get_method(r.method).family for r in runs}
    family.update({r.curve: get_method(r.method).family for r in runs if r.curve is not None})
    unknown = [r for r in rb.runs if r not in family]
    if unknown:
        raise SaedetoxError(f"robustness.runs names no run or curve of this sweep: {', '.join(unknown)}.")
    curves = [r for r in rb.runs if r not in {p.name for p in runs}]
    if curves and rb.ppl_ratio is None:
        raise SaedetoxError(f"robustness.runs names curve(s) {', '.join(curves)}: set robustness.ppl_ratio.")
    if curves and not any(r.method == "none" for r in runs):
        raise SaedetoxError("robustness.runs names curves, whose levels are chosen by PPL ratio to a `none` run.")
    for key, want in (("primary", "sae"), ("baseline", "baseline")):
        if family[getattr(rb, key)] != want:
            raise SaedetoxError(f"robustness.{key} must be a {want} run, got {getattr(rb, key)!r}.")
    if rb.judge is not None and rb.judge not in judges:
        raise SaedetoxError(
            f"robustness.judge '{rb.judge}' is not among the evaluation's judges ({', '.join(judges)})."
        )
    return (
        f"robustness: {len(rb.runs)} runs under {', '.join(rb.attacks)}; {rb.primary} vs {rb.baseline}, "
        f"judge {rb.judge or judges[0]}"
    )


def _check_comparison(cfg: SweepConfig, runs: list, judges: tuple[str, ...]) -> str:
    """The pre-registered question names a curve this sweep runs and a judge it scores with."""
    comp = cfg.comparison
    assert comp is not None
    curves = list(dict.fromkeys(r.curve for r in runs if r.curve is not None))
    if comp.primary is not None and comp.primary not in curves:
        raise SaedetoxError(
            f"comparison.primary '{comp.primary}' names no curve of this sweep: "
            f"use one of {', '.join(curves) or 'none'}."
        )
    if comp.judge is not None and comp.judge not in judges:
        raise SaedetoxError(
            f"comparison.judge '{comp.judge}' is not among the evaluation's judges ({', '.join(judges)})."
        )
    primary = comp.primary or "the first SAE curve"
    return f"comparison: {primary} at PPL ratios {comp.ppl_ratios}, judge {comp.judge or judges[0]}"


def _model_line(name: str) -> str:
    head = model_header(name)
    if head is None:
        if Path(name).expanduser().exists():
            raise SaedetoxError(f"{name} is not a Hugging Face model directory (no readable config.json).")
        if name.startswith((".", "/", "~")):
            raise SaedetoxError(f"Model directory {name} does not exist.")
        return f"model {name}: hub name, not in the HF cache (needs the network; not checked offline)"
    where = "reference world" if name == REFERENCE_NAME else head["where"]
    return f"model {name}: {where}, {head['n_layers']} layers, width {head['d_model']}"


def run_eval_config(ev: EvalConfig, capability: bool) -> EvalConfig:
    """A run's evaluation: the sweep's, with capability only for runs that ask for it."""
    return replace(ev, capability=ev.capability if capability else ())
