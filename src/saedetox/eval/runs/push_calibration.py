"""Push-calibrated levels: strengths that give gated and adaptive modes a target *effective* push.

A steering run can ask for a target effective push (``Intervention.push``: mean ‖Δx‖ over
generated positions / median residual norm at the hook, the quantity every steered run
records). Constant mode gets it in closed form (α = push · median / ‖Σ û‖). Gated modes
(``conditional``, ``token``) and ``adaptive`` push only where their gate or detector says, so
their α is found on a short pilot generation:

1. pilot prompts: ``PILOT_PROMPTS`` (32) prompts drawn with a fixed seed from the run's own
   prompt pool *minus the prompts the run evaluates* — for a packaged ``:test`` split, from its
   ``:dev`` split instead (:func:`pilot_source`), so no test prompt sets a strength; when the pool
   has fewer left over, the remainder comes from the evaluated prompts and the record says
   ``"disjoint": false``. The pilot runs on the HF sampler whichever backend the run uses;
2. one sample per prompt with the run's own sampling settings (top-p, temperature, length, seed);
3. α ← α · target / measured, repeated until the measured push is within ``TOLERANCE`` (10%)
   of the target, at most ``MAX_STEPS`` (3) rescalings. α starts from the closed form, or from
   ``Method.calibration_start`` when given: a sweep starts each level of a push curve from the
   previous level's calibrated α scaled by the ratio of the targets (push is close to
   proportional to α along a curve), which usually lands within tolerance on the first pilot.
   The record keeps every step's α (``history_alpha``) and push (``history``).

The run then records the target (``config.push``), the pilot's measured push
(``config.push_calibration``) and the push it achieved on its own prompts (``steering``).
The result is cached in the run folder, so a resumed run does not repeat the pilot.
"""

from __future__ import annotations

import copy
import json
import random
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from saedetox.data.readers import Prompt, read_lines, read_rtp
from saedetox.data.roles import is_reference_prompt_set, reference_prompts
from saedetox.errors import SaedetoxError
from saedetox.eval.config import EvalConfig
from saedetox.eval.sampler.sampling import SAMPLER, SamplingConfig, iter_samples
from saedetox.io import atomic_write_json
from saedetox.methods.base import Method
from saedetox.model.load import LoadedModel
from saedetox.steering.steerer import Steerer

PILOT_PROMPTS = 32
TOLERANCE = 0.10
MAX_STEPS = 3
PILOT_SALT = 7919  # the pilot's prompt draw is seeded apart from the run's own subset


def prompt_pool(source: str, data_dir: str | None = None) -> list[Prompt]:
    """Every prompt of a run's prompt source (a packaged set such as ``challenging:dev``, or a file)."""
    if is_reference_prompt_set(source):
        return reference_prompts(source, data_dir)
    p = Path(source)
    return read_rtp(p) if p.suffix in (".jsonl", ".json") else [Prompt(t) for t in read_lines(p)]


def pilot_source(source: str) -> str:
    """Where a run's pilot prompts come from: a packaged ``:test`` split calibrates on its ``:dev`` split
    (no test prompt is used to set a strength); any other source on itself, minus the evaluated prompts."""
    base, _, split = source.partition(":")
    return f"{base}:dev" if split == "test" and is_reference_prompt_set(source) else source


def pilot_prompts(
    pool: list[str], evaluated: list[str], n: int = PILOT_PROMPTS, seed: int = 0
) -> tuple[list[str], bool]:
    """``n`` pilot prompts from ``pool``, none of them ``evaluated`` when the pool allows; (prompts, disjoint)."""
    used = set(evaluated)
    rng = random.Random(seed * 1_000_003 + PILOT_SALT)
    spare = sorted(set(pool) - used)
    rng.shuffle(spare)
    chosen = spare[:n]
    if len(chosen) < n:
        rest = sorted(used)
        rng.shuffle(rest)
        chosen += rest[: n - len(chosen)]
    return chosen, len(chosen) <= len(spare)


def measure_push(lm: LoadedModel, steerer: Steerer, prompts: list[str], sampling: SamplingConfig) -> list[float | None]:
    """Each intervention's effective push over one pilot generation (the steerer's statistics are reset)."""
    steerer.reset_stats()
    for _ in iter_samples(lm, prompts, sampling, steerer=steerer):
        pass
    pushes = [row["effective_push"] for row in steerer.stats()["interventions"]]
    steerer.reset_stats()
    return pushes


def calibrate_push(
    lm: LoadedModel,
    steerer: Steerer,
    prompts: list[str],
    sampling: SamplingConfig,
    tolerance: float = TOLERANCE,
    max_steps: int = MAX_STEPS,
) -> dict[str, Any] | None:
    """Rescale the α of every push-level intervention that needs it until its pilot push is on target."""
    todo = [i for i, r in enumerate(steerer.resolved) if r.needs_calibration]
    if not todo:
        return None
    pilot = replace(sampling, n_samples=1, sampler=SAMPLER)  # the HF sampler, whichever backend the run uses
    history: list[list[float | None]] = []
    alphas: list[list[float]] = []
    for step in range(max_steps + 1):
        alphas.append([steerer.resolved[i].alpha for i in todo])
        pushes = measure_push(lm, steerer, prompts, pilot)
        history.append([pushes[i] for i in todo])
        off = []
        for i in todo:
            got, want = pushes[i], steerer.resolved[i].target_push
            if not got:
                raise SaedetoxError(
                    f"Intervention {i} ({steerer.resolved[i].spec.mode} mode) never pushed on the pilot prompts "
                    "(its gate never opened), so its push level cannot be calibrated; lower its threshold."
                )
            if abs(got / want - 1) > tolerance:  # type: ignore[operator]
                off.append(i)
        if not off or step == max_steps:
            break
        for i in off:
            r = steerer.resolved[i]
            r.set_alpha(r.alpha * r.target_push / pushes[i])  # type: ignore[operator]
    final = history[-1]
    return {
        "target": [steerer.resolved[i].target_push for i in todo],
        "pilot_push": final,
        "alpha": [steerer.resolved[i].alpha for i in todo],
        "within_tolerance": all(
            abs(p / steerer.resolved[i].target_push - 1) <= tolerance  # type: ignore[operator]
            for i, p in zip(todo, final, strict=True)
        ),
        "steps": len(history) - 1,
        "history": history,
        "history_alpha": alphas,
        "n_prompts": len(prompts),
        "tolerance": tolerance,
    }


def calibration_key(st: Steerer, cfg: EvalConfig) -> dict[str, Any]:
    """What a cached calibration was made for: the steering, the sampling and the prompt set (its pilot pool)."""
    key = {"spec": st.spec.to_dict(), "sampling": cfg.sampling.__dict__, "prompts": cfg.prompts}
    if pilot_source(cfg.prompts) != cfg.prompts:
        key["pilot_prompts"] = pilot_source(cfg.prompts)
    return json.loads(json.dumps(key))


def pin_calibration(method: Method, cfg: EvalConfig, source: Path, cache: Path) -> bool:
    """Give a run of ``method`` under protocol ``cfg`` the push levels of the finished calibration ``source``.

    Writes ``cache`` (the run folder's calibration file) with ``source``'s record under ``cfg``'s key, so
    :func:`calibrate_method` loads those levels instead of calibrating on ``cfg``'s pilot: a run of the
    same method under an attack or on another prompt set steers exactly as the clean run did. Refused
    (one line) when ``source`` was calibrated for another steering. False when there is nothing to pin.
    """
    st = method.steerer
    if st is None or not any(r.needs_calibration for r in st.resolved) or not source.exists():
        return False
    saved = json.loads(source.read_text(encoding="utf-8"))
    if saved.get("key", {}).get("spec") != json.loads(json.dumps(st.spec.to_dict())):
        raise SaedetoxError(f"{source} was calibrated for another steering; rerun that run first.")
    pinned = {"key": calibration_key(st, cfg), "record": saved["record"]}
    if not cache.exists() or json.loads(cache.read_text(encoding="utf-8")) != pinned:
        cache.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(cache, pinned)
    return True


def calibrate_method(
    lm: LoadedModel,
    method: Method,
    cfg: EvalConfig,
    evaluated: list[Prompt],
    data_dir: str | None = None,
    cache: Path | None = None,
) -> dict[str, Any] | None:
    """Calibrate a method's push levels before its run (no-op unless it has some); update its details.

    ``cache`` (a JSON file in the run folder) holds a finished calibration for the same settings.
    """
    st = method.steerer
    if st is None or not any(r.needs_calibration for r in st.resolved):
        return None
    key = calibration_key(st, cfg)
    record = None
    if cache is not None and cache.exists():
        saved = json.loads(cache.read_text())
        if saved.get("key") == key:
            record = saved["record"]
            todo = [i for i, r in enumerate(st.resolved) if r.needs_calibration]
            for i, alpha in zip(todo, record["alpha"], strict=True):
                st.resolved[i].set_alpha(alpha)
    if record is None:
        start = method.calibration_start
        if start is not None:
            todo = [i for i, r in enumerate(st.resolved) if r.needs_calibration]
            if len(start) != len(todo) or not all(a > 0 for a in start):
                raise SaedetoxError(f"calibration_start needs one positive α per calibrated intervention ({len(todo)})")
            for i, alpha in zip(todo, start, strict=True):
                st.resolved[i].set_alpha(alpha)
        pool = [p.text for p in prompt_pool(pilot_source(cfg.prompts), data_dir)]
        texts, disjoint = pilot_prompts(pool, [p.text for p in evaluated], PILOT_PROMPTS, cfg.seed)
        record = calibrate_push(lm, st, [method.prefix + t for t in texts], cfg.sampling)
        assert record is not None
        record["disjoint"] = disjoint
        record["pilot_prompts"] = pilot_source(cfg.prompts)
        record["start_alpha"] = record["history_alpha"][0]
        if cache is not None:
            atomic_write_json(cache, {"key": key, "record": record})
    method.details.update(alpha=st.resolved[0].alpha, push_calibration=record, steering=st.describe())
    return record


@dataclass(frozen=True)
class Uncalibrated:
    """A method's state before :func:`calibrate_method` changed it: its details and its interventions' α.

    A run's fingerprint is taken before calibration, so one :class:`Method` object used for several runs
    in one process (a clean run, then the same level under an attack) is put back into this state before
    each, and every run gets the fingerprint a fresh process would give it.
    """

    details: dict[str, Any]
    alphas: tuple[float, ...]

    @classmethod
    def of(cls, method: Method) -> Uncalibrated:
        st = method.steerer
        return cls(copy.deepcopy(method.details), tuple(r.alpha for r in st.resolved) if st is not None else ())

    def restore(self, method: Method) -> None:
        method.details = copy.deepcopy(self.details)
        st = method.steerer
        if st is not None:
            for r, alpha in zip(st.resolved, self.alphas, strict=True):
                if r.alpha != alpha:
                    r.set_alpha(alpha)
