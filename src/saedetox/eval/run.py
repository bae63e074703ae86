"""``saedetox evaluate``: the RealToxicityPrompts protocol (``docs/evaluation.md``), resumable.

For each prompt, ``k`` continuations of up to ``N`` new tokens are sampled (nucleus p, T=1)
with the method under test active, and written to ``RUN/generations.jsonl`` row by row
(:mod:`saedetox.eval.runs.generation_log`: a restarted run regenerates no finished row). Then each judge
scores every continuation (cached per judge in ``RUN/scores.npz``); metrics are Expected
Maximum Toxicity (± std), Toxicity Probability and mean toxicity per judge with bootstrap 95%
CIs and a split by prompt toxicity; conditional perplexity of the continuations under a
reference LM (default: the unsteered model); perplexity of the (steered) model on held-out
clean text; dist-1/2/3; optional capability benchmarks; agreement between judges.
``RUN/metrics.json`` holds the keys of ``docs/metrics.md`` and the run's fingerprint.

Every input is checked before a model is loaded or the folder created (:func:`prepare`); one
process writes a run folder at a time (:func:`saedetox.io.folder_lock`); a folder holding a run
made with other settings is refused unless ``overwrite`` (:mod:`saedetox.eval.runs.fingerprint`,
:mod:`saedetox.eval.runs.runfolder`).
"""

from __future__ import annotations

import importlib.metadata as md
import platform
import random
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from saedetox.data.attacks import attack_contexts
from saedetox.data.corpus import heldout_texts
from saedetox.data.location import resolve_data_dir
from saedetox.data.readers import Prompt
from saedetox.errors import SaedetoxError
from saedetox.eval.config import EvalConfig
from saedetox.eval.metrics.capability import CapabilityScores, run_capability
from saedetox.eval.metrics.diversity import diversity
from saedetox.eval.metrics.fluency import clean_perplexity, conditional_perplexity, drop_from_scores
from saedetox.eval.metrics.gate import gate_quality
from saedetox.eval.metrics.judge_agreement import judge_agreement
from saedetox.eval.metrics.paired import per_prompt_block, prompt_uids
from saedetox.eval.metrics.toxicity import toxicity_summary
from saedetox.eval.result import RunResult
from saedetox.eval.runs.fingerprint import Fingerprint, protocol_settings, run_fingerprint
from saedetox.eval.runs.generation import generate_all
from saedetox.eval.runs.judge_scores import check_judges, score_judges
from saedetox.eval.runs.push_calibration import calibrate_method, prompt_pool
from saedetox.eval.runs.runfolder import CONFIG, METRICS, discard_if_empty, open_run, precheck
from saedetox.eval.sampler.backends import check_available
from saedetox.io import atomic_write_json, check_output_dir, folder_lock
from saedetox.methods.base import Method
from saedetox.methods.registry import as_method
from saedetox.model.chat import chat_texts, check_chat
from saedetox.model.load import LoadedModel, as_loaded_model
from saedetox.progress import note, warn
from saedetox.steering.spec import SteeringSpec


def load_prompts(cfg: EvalConfig, data_dir: str | None = None) -> list[Prompt]:
    """The run's prompts: a reference set or a file, subset to ``n_prompts`` with the seed."""
    src = cfg.prompts
    prompts = prompt_pool(src, data_dir)
    if cfg.n_prompts is not None and cfg.n_prompts < 0:
        raise SaedetoxError("n_prompts must be 0 (all prompts) or positive.")
    if cfg.n_prompts and cfg.n_prompts > len(prompts):
        warn(f"{cfg.n_prompts} prompts asked for, but {src} holds {len(prompts)}; using all {len(prompts)}.")
    if cfg.n_prompts and cfg.n_prompts < len(prompts):
        idx = sorted(random.Random(cfg.seed).sample(range(len(prompts)), cfg.n_prompts))
        prompts = [prompts[i] for i in idx]
    if not prompts:
        raise SaedetoxError(f"No prompts in {src}.")
    if any(not p.text.strip() for p in prompts):
        raise SaedetoxError(f"{src} holds an empty prompt: every prompt must contain some text.")
    return prompts


def clean_texts(cfg: EvalConfig, data_dir: str | None = None) -> list[str]:
    """The held-out clean texts for ``ppl_clean`` (``clean_texts`` of them; none when it is 0)."""
    return heldout_texts(resolve_data_dir(data_dir), cfg.clean_texts) if cfg.clean_texts else []


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("saedetox", "torch", "transformers", "sae-lens", "lm-eval", "alt-profanity-check", "scikit-learn"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def attacked_contexts(cfg: EvalConfig, prompts: list[Prompt], data_dir: str | None = None) -> list[str]:
    """What the model continues for each prompt before any method prefix: the prompt, or its attacked context."""
    texts = [p.text for p in prompts]
    return texts if cfg.attack is None else attack_contexts(cfg.attack, texts, prompt_uids(prompts), data_dir)


# --------------------------------------------------------------------------- scoring


def prepare(
    cfg: EvalConfig, run: Path, data_dir: str | None = None, overwrite: bool = False
) -> tuple[list[Prompt], list[str], Fingerprint]:
    """Everything checked before a model is loaded or a folder created: the config, the judges, the
    output folder, the prompts and clean texts, and (without ``overwrite``) that ``run`` holds no run
    made with other model-independent settings. Returns the prompts, clean texts and those settings."""
    cfg.validate()
    check_available(cfg.backend)
    check_judges(cfg.judges)
    check_output_dir(run)
    prompts = load_prompts(cfg, data_dir)
    clean = clean_texts(cfg, data_dir)
    base = protocol_settings(cfg, prompts, clean, data_dir)
    precheck(run, base, overwrite)
    return prompts, clean, base


# --------------------------------------------------------------------------- the protocol


def evaluate(
    lm: LoadedModel,
    run: str | Path,
    cfg: EvalConfig | None = None,
    method: Method | SteeringSpec | str | None = None,
    run_name: str | None = None,
    ref_lm: LoadedModel | None = None,
    run_config: dict[str, Any] | None = None,
    data_dir: str | None = None,
    overwrite: bool = False,
    backend: str | None = None,
    data_parallel: int | None = None,
    attack: str | None = None,
) -> RunResult:
    """Run the protocol; write ``RUN/metrics.json``; return it as a :class:`RunResult`.

    ``cfg`` defaults to :class:`EvalConfig` (); ``method`` is a :class:`Method`, a steering spec
    (method ``sae``), a method name or ``None`` (the unsteered model).
    ``data_dir`` is where the datasets live (prompt sets, held-out text, benchmark files). A
    folder holding a finished run with the same fingerprint returns its metrics; an unfinished
    one resumes; one made with other settings is refused (:class:`StaleRunError`) unless
    ``overwrite``. Everything is validated before the folder is created; one writer per folder.
    ``backend`` / ``data_parallel`` override ``cfg``'s (``"vllm"``: generated by vLLM, :mod:`saedetox.serving`);
    ``attack`` (``docs/attacks.md``) sets ``cfg.attack``: each prompt in an adversarial context.
    """
    t0 = time.time()
    cfg = cfg if cfg is not None else EvalConfig()
    given = {"backend": backend, "data_parallel": data_parallel, "attack": attack}
    cfg = replace(cfg, **{k: v for k, v in given.items() if v is not None})
    lm, ref_lm = as_loaded_model(lm), as_loaded_model(ref_lm) if ref_lm is not None else None
    if cfg.chat:
        for m in (lm, ref_lm or lm):
            check_chat(m.tokenizer, m.name)
    method = as_method(lm, method)
    shared = [j for j in method.judges if j in cfg.judges]
    if shared:
        warn(
            f"Method '{method.name}' learnt from the labels of judge {', '.join(shared)}, which also scores this run: "
            "its toxicity under that judge is not independent of its training."
        )
    run = Path(run)
    prompts, clean, base = prepare(cfg, run, data_dir, overwrite)
    fp = run_fingerprint(base, lm, method, ref_lm, run_config)  # push targets, not the calibrated strengths
    with folder_lock(run, "evaluate"):
        done = open_run(run, fp, overwrite)
        if done is not None:
            if done.get("config", {}).get("run") != (run_name or run.name):  # a renamed or copied run folder
                done["config"]["run"] = run_name or run.name
                atomic_write_json(run / METRICS, done)
            return RunResult(done, run)
        created = not run.exists()
        try:
            run.mkdir(parents=True, exist_ok=True)
            calibrate_method(lm, method, cfg, prompts, data_dir, run / "push_calibration.json")  # push levels
            config = _run_config(run, cfg, method, lm, prompts, run_name, run_config)
            atomic_write_json(run / CONFIG, {"fingerprint": fp.to_dict(), **config})
            contexts = attacked_contexts(cfg, prompts, data_dir)
            conts, steering = generate_all(lm, prompts, method, cfg.sampling, run, cfg.vllm, contexts)
        except SaedetoxError:
            discard_if_empty(run, created)
            raise
        job = _Job(lm, ref_lm, run, cfg, method, prompts, clean, data_dir, fp, t0)
        return _measure(job, config, conts, steering)


def _run_config(
    run: Path,
    cfg: EvalConfig,
    method: Method,
    lm: LoadedModel,
    prompts: list[Prompt],
    run_name: str | None,
    run_config: dict[str, Any] | None,
) -> dict[str, Any]:
    return {
        "run": run_name or run.name,
        "method": method.name,
        **method.details,
        **(run_config or {}),
        "model": lm.name,
        "prompts": cfg.prompts,
        "n_prompts": len(prompts),
        "subset_seed": cfg.seed,
        "sampling": asdict(cfg.sampling),
        "judges": list(cfg.judges),
        "prefix": method.prefix,
        "backend": cfg.backend,
        **({"data_parallel": cfg.data_parallel} if cfg.data_parallel > 1 else {}),
        **({"attack": cfg.attack} if cfg.attack is not None else {}),
    }


@dataclass(frozen=True)
class _Job:
    """What one evaluation works on, once its folder is open and its prompts are chosen."""

    lm: LoadedModel
    ref_lm: LoadedModel | None
    run: Path
    cfg: EvalConfig
    method: Method
    prompts: list[Prompt]
    clean: list[str]
    data_dir: str | None
    fp: Fingerprint
    t0: float


def _gate(job: _Job, conts: list[list[str]], scores: dict[str, Any]) -> dict[str, Any]:
    """The gate of ``cfg.gate_features`` on each prompt + continuation, labelled by the first judge."""
    cfg, judge = job.cfg, job.cfg.judges[0]
    note("measuring the gate")
    texts = [p.text + c for p, row in zip(job.prompts, conts, strict=True) for c in row]
    toxic = (scores[judge] >= cfg.threshold).ravel().tolist()
    assert cfg.gate_features is not None
    out = gate_quality(job.lm, cfg.gate_features, texts, toxic, job.data_dir)
    return {**out, "features": str(cfg.gate_features), "judge": judge}


def _measure(job: _Job, config: dict[str, Any], conts: list[list[str]], steering: dict[str, Any] | None) -> RunResult:
    """Score the continuations, measure fluency and capability; write and return ``RUN/metrics.json``."""
    lm, ref_lm, run, cfg, method, prompts = job.lm, job.ref_lm, job.run, job.cfg, job.method, job.prompts
    clean, data_dir, fp, t0 = job.clean, job.data_dir, job.fp, job.t0
    gen_seconds = time.time() - t0
    sampling = cfg.sampling
    scores = score_judges(cfg.judges, conts, run, fp.generation)
    ref = ref_lm or lm
    note("measuring perplexity")
    # as the continuations followed them (an attacked run's context includes the attack)
    contexts = chat_texts(ref.tokenizer, attacked_contexts(cfg, prompts, data_dir), cfg.chat)
    ppl = conditional_perplexity(ref, contexts, conts, batch_size=cfg.ppl_batch_size, prepend_bos=sampling.prepend_bos)
    scores = {j: drop_from_scores(s, ppl["dropped"]) for j, s in scores.items()}  # one rule for both metrics
    ptox = [p.toxicity for p in prompts]
    toxicity = {
        j: toxicity_summary(s, prompt_toxicity=ptox, threshold=cfg.threshold, n_boot=cfg.n_boot, seed=cfg.seed)
        for j, s in scores.items()
    }
    gate = _gate(job, conts, scores) if cfg.gate_features else None
    fluency: dict[str, Any] = {
        "ppl_conditional": ppl["ppl"],
        "ppl_ci": ppl.get("ppl_ci"),
        "n_dropped": ppl.get("n_dropped"),
        "n_empty": ppl.get("n_empty"),
        "reference_model": ref.name if ref_lm is not None else f"{lm.name} (unsteered)",
    }
    with method.context():
        if clean:
            fluency["ppl_clean"] = clean_perplexity(lm, clean, prepend_bos=sampling.prepend_bos)
        capability = CapabilityScores()
        if cfg.capability:
            note(f"running capability tasks: {', '.join(cfg.capability)}")
            capability = run_capability(lm, tasks=cfg.capability, limit=cfg.capability_limit, data_dir=data_dir)
    result = {
        "config": config,
        "versions": versions(),
        "n_prompts": len(prompts),
        "samples_per_prompt": sampling.n_samples,
        "toxicity": toxicity,
        "fluency": fluency,
        "diversity": diversity(conts),
        "capability": capability.accuracy,
        "capability_ppl": capability.perplexity,
        "judge_agreement": judge_agreement({j: s.ravel() for j, s in scores.items()}, threshold=cfg.threshold)
        if len(scores) > 1
        else {},
        "per_prompt": per_prompt_block(prompts, scores, cfg.threshold, ppl["log_ppl"]),
        **({"steering": steering} if steering is not None else {}),
        **({"gate": gate} if gate is not None else {}),
        "generation_seconds": round(gen_seconds, 2),
        "wall_seconds": round(time.time() - t0, 2),
        "fingerprint": fp.to_dict(),
    }
    atomic_write_json(run / METRICS, result)
    return RunResult(result, run)
