"""The sweep config (one YAML): its schema as dataclasses, parsed with one clear line per problem.

A sweep YAML names the model, the SAE, an optional discovery step, the evaluation protocol
(:class:`~saedetox.eval.config.EvalConfig`, its fields are the ``evaluation:`` keys), the runs
(methods × modes × tiers/strengths) and an optional feature-splitting study.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from saedetox.discover import DEFAULT_K, DEFAULT_MIN_AUROC
from saedetox.discover.kgrid import parse_k
from saedetox.discover.options import GateOptions
from saedetox.errors import SaedetoxError
from saedetox.eval.config import EvalConfig
from saedetox.methods.registry import MethodInfo, get_method, method_names, train_judge_for
from saedetox.report.curves import ComparisonConfig
from saedetox.report.robustness import RobustnessConfig
from saedetox.report.secondary import SecondaryConfig
from saedetox.steering.spec import MODES, POOLINGS, parse_tier


@dataclass
class DiscoveryCfg(GateOptions):
    """A sweep's ``discovery:`` keys: the ranking and selection, and :class:`GateOptions`' filters and gate."""

    method: str = "attribution"
    k: int | list[int] | str = DEFAULT_K  # a number, a grid the select split chooses from, or auto
    min_auroc: float = DEFAULT_MIN_AUROC
    max_pairs: int | None = None


@dataclass
class RunGroup:
    method: str
    modes: list[str] = field(default_factory=lambda: ["constant"])
    tiers: list[str | float] = field(default_factory=list)  # named, or fractions of the median residual norm
    strengths: list[float] = field(default_factory=list)
    push: list[float] = field(default_factory=list)  # target effective pushes (sae, meandiff): equal in every mode
    threshold: float | str = "auto"  # auto = steering.spec.default_gates (discovery's gates for conditional)
    clamp_value: float = 0.0
    positions: str = "all"
    capability: bool = False
    pooling: str | None = None  # adaptive runs: the detector's pooling, max or token (default: the detector's own)
    train_judge: str | None = None  # methods that learn from a judge's labels (methods.registry.train_judge_for)


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
    comparison: ComparisonConfig | None = None  # the pre-registered comparison the report states
    robustness: RobustnessConfig | None = None  # runs again under attacks, compared paired by prompt
    secondary: SecondaryConfig | None = None  # runs again on another prompt set: a secondary question
    dtype: str = "auto"
    device: str = "auto"
    data_dir: str | None = None
    overwrite: bool = False  # replace runs in the output folder that were made with other settings
    workers: int = 1  # CPU processes running whole curves side by side (experiments/workers.py); the same tokens


def _build(cls: type, raw: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        raise SaedetoxError(f"{where} must be a mapping.")
    names = {f.name for f in fields(cls)}
    unknown = set(raw) - names
    if unknown:
        raise SaedetoxError(f"Unknown key(s) in {where}: {', '.join(sorted(unknown))}.")
    return cls(**raw)


_LISTS = {"modes": str, "tiers": (str, int, float), "strengths": (int, float), "push": (int, float)}


def _check_group(g: RunGroup, where: str) -> None:
    for key, kind in _LISTS.items():
        value = getattr(g, key)
        if isinstance(value, (str, int, float)):  # `push: 0.2` means the one-level list [0.2]
            value = [value]
            setattr(g, key, value)
        if not isinstance(value, list) or any(isinstance(v, bool) or not isinstance(v, kind) for v in value):
            raise SaedetoxError(f"{where}.{key} must be a list of {'names' if kind is str else 'numbers'}.")
    if not isinstance(g.capability, bool):
        raise SaedetoxError(f"{where}.capability must be true or false.")
    if g.threshold != "auto" and (isinstance(g.threshold, bool) or not isinstance(g.threshold, (int, float))):
        raise SaedetoxError(f"{where}.threshold must be a number or auto, got {g.threshold!r}.")


def _check_sections(cfg: SweepConfig) -> None:
    if isinstance(cfg.workers, bool) or not isinstance(cfg.workers, int) or cfg.workers < 1:
        raise SaedetoxError(f"workers must be a whole number ≥ 1, got {cfg.workers!r}.")
    f = cfg.features
    if f is not None and not isinstance(f, str):
        if not isinstance(f, list) or any(isinstance(i, bool) or not isinstance(i, int) for i in f):
            raise SaedetoxError(
                f"features must be a list of latent indices (integers) or a features.json path, got {f!r}."
            )
    d = cfg.discovery
    if d is not None:
        try:
            k = parse_k(d.k)
        except SaedetoxError as e:
            raise SaedetoxError(f"discovery.{e}") from None
        d.k = list(k) if isinstance(k, tuple) else k  # a grid as the list of its values, so caches compare
        if isinstance(d.min_auroc, bool) or not isinstance(d.min_auroc, (int, float)) or not 0 <= d.min_auroc <= 1:
            raise SaedetoxError(f"discovery.min_auroc must be in [0, 1], got {d.min_auroc!r}.")
        if d.max_pairs is not None and (
            isinstance(d.max_pairs, bool) or not isinstance(d.max_pairs, int) or d.max_pairs < 2
        ):
            raise SaedetoxError(f"discovery.max_pairs must be a whole number ≥ 2, got {d.max_pairs!r}.")
    sp = cfg.splitting
    if sp is not None:
        if not isinstance(sp.saes, list) or not all(isinstance(x, str) for x in sp.saes):
            raise SaedetoxError("splitting.saes must be a list of SAE names.")
        if isinstance(sp.coverage, bool) or not isinstance(sp.coverage, (int, float)) or not 0 < sp.coverage <= 1:
            raise SaedetoxError(f"splitting.coverage must be in (0, 1], got {sp.coverage!r}.")
        if sp.mode not in MODES:
            raise SaedetoxError(f"Unknown mode '{sp.mode}' in splitting ({', '.join(MODES)}).")
        sp.tier = parse_tier(sp.tier)  # type: ignore[assignment]


def parse_config(raw: dict[str, Any]) -> SweepConfig:
    """Validate a sweep mapping against the schema; one clear line per problem."""
    if raw is None:
        raise SaedetoxError("The sweep config is empty.")
    if not isinstance(raw, dict):
        raise SaedetoxError(
            f"The sweep config must be a mapping of keys (model, sae, runs, …), not a {type(raw).__name__}."
        )
    raw = dict(raw)
    for key, cls in (("discovery", DiscoveryCfg), ("evaluation", EvalConfig), ("splitting", SplittingCfg)):
        if raw.get(key) is not None:
            raw[key] = _build(cls, raw[key], key)
    if raw.get("comparison") is not None:  # the pre-registered comparison (report.curves.ComparisonConfig)
        raw["comparison"] = _build(ComparisonConfig, raw["comparison"], "comparison")
    if raw.get("robustness") is not None:  # the pre-registered robustness question (report.robustness)
        raw["robustness"] = _build(RobustnessConfig, raw["robustness"], "robustness")
    if raw.get("secondary") is not None:  # the pre-registered secondary question (report.secondary)
        raw["secondary"] = _build(SecondaryConfig, raw["secondary"], "secondary")
    groups = raw.get("runs") or []
    if not isinstance(groups, list) or not groups:
        raise SaedetoxError("The sweep config needs a non-empty 'runs' list.")
    raw["runs"] = [_build(RunGroup, g, f"runs[{i}]") for i, g in enumerate(groups)]
    cfg = _build(SweepConfig, raw, "the sweep config")
    for i, g in enumerate(cfg.runs):
        _check_group(g, f"runs[{i}]")
    if not isinstance(cfg.overwrite, bool):
        raise SaedetoxError("overwrite must be true or false.")
    for key in ("model", "dtype", "device"):
        if not isinstance(getattr(cfg, key), str):
            raise SaedetoxError(f"{key} must be a name, got {getattr(cfg, key)!r}.")
    for key in ("sae", "hook", "data_dir"):
        if getattr(cfg, key) is not None and not isinstance(getattr(cfg, key), str):
            raise SaedetoxError(f"{key} must be a name or a path, got {getattr(cfg, key)!r}.")
    _check_sections(cfg)
    for g in cfg.runs:
        _check_method(g, get_method_in_runs(g.method))
    if any("spec" in get_method(g.method).needs for g in cfg.runs) and cfg.features is None and cfg.discovery is None:
        raise SaedetoxError("SAE runs need 'features' or a 'discovery' section.")
    return cfg


def get_method_in_runs(name: Any) -> MethodInfo:
    """The run group's method (one clear line for a name nobody registered)."""
    if not isinstance(name, str) or name not in method_names():
        raise SaedetoxError(f"Unknown method '{name}' in runs: use one of {', '.join(method_names())}.")
    return get_method(name)


def _check_method(g: RunGroup, info: MethodInfo) -> None:
    """A run group asks only for what its method declares (modes, push levels, numeric tiers)."""
    for m in g.modes:
        if m not in MODES:
            raise SaedetoxError(f"Unknown mode '{m}' in runs ({', '.join(MODES)}).")
    if info.modes and any(m not in info.modes for m in g.modes):
        raise SaedetoxError(f"{info.name} runs take modes {', '.join(info.modes)}, got {', '.join(g.modes)}.")
    if g.pooling is not None and (g.pooling not in POOLINGS or "adaptive" not in g.modes):
        raise SaedetoxError(f"pooling ({', '.join(POOLINGS)}) is for adaptive runs, got {g.pooling!r}.")
    if g.push and not info.push:
        pushed = " and ".join(n for n in method_names() if get_method(n).push)
        raise SaedetoxError(f"push levels are for {pushed} runs, not '{g.method}'.")
    if any(isinstance(x, bool) or not isinstance(x, (int, float)) or not 0 < x <= 8 for x in g.push):
        raise SaedetoxError(f"push levels are fractions of the median residual norm in (0, 8], got {g.push}.")
    if g.train_judge is not None:
        if not info.learns_from_judge:
            learners = ", ".join(n for n in method_names() if get_method(n).learns_from_judge)
            raise SaedetoxError(f"train_judge is for {learners} runs, not '{g.method}'.")
        g.train_judge = train_judge_for(g.train_judge)
    g.tiers = [parse_tier(t) for t in g.tiers]
    if not info.numeric_tiers and any(not isinstance(t, str) for t in g.tiers):
        raise SaedetoxError(f"{info.name} takes named tiers (low, medium, high) or raw strengths, not numeric tiers.")


def load_config(path: str | Path) -> SweepConfig:
    p = Path(path)
    if not p.exists():
        raise SaedetoxError(f"Sweep config {p} not found.")
    if p.is_dir():
        raise SaedetoxError(f"Sweep config {p} is a folder; pass the YAML file.")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise SaedetoxError(f"{p} is not UTF-8 text; save the sweep config as UTF-8 YAML.") from None
    except yaml.YAMLError as err:
        raise SaedetoxError(f"{p} is not valid YAML ({str(err).splitlines()[0]}).") from None
    return parse_config(raw)
