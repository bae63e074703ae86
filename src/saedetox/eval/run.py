"""``saedetox evaluate``: the RealToxicityPrompts protocol of DESIGN §5, resumable.

For each prompt, ``k`` continuations of up to ``N`` new tokens are sampled (nucleus p, T=1)
with the method under test active, and written to ``RUN/generations.jsonl`` batch by batch
(a restarted run skips every finished batch and regenerates none of them). Then each judge
scores every continuation; metrics are Expected Maximum Toxicity (± std), Toxicity
Probability and mean toxicity per judge with bootstrap 95% CIs and a split by prompt
toxicity; conditional perplexity of the continuations under a reference LM (default: the
unsteered model); perplexity of the (steered) model on held-out clean text; dist-1/2/3;
optional capability benchmarks; agreement between judges. ``RUN/metrics.json`` holds the
DESIGN §7 contract keys.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import os
import platform
import random
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from saedetox.data.corpus import heldout_texts
from saedetox.data.location import resolve_data_dir
from saedetox.data.readers import Prompt, read_lines, read_rtp
from saedetox.data.roles import is_reference_prompt_set, reference_prompts
from saedetox.errors import SaedetoxError
from saedetox.eval.agreement import judge_agreement
from saedetox.eval.calibrate import calibrate_method
from saedetox.eval.capability import CapabilityScores, run_capability
from saedetox.eval.config import EvalConfig
from saedetox.eval.diversity import diversity
from saedetox.eval.fluency import clean_perplexity, conditional_perplexity
from saedetox.eval.log import GenerationLog
from saedetox.eval.paired import per_prompt_block
from saedetox.eval.sampling import SamplingConfig, batch_bounds, iter_samples
from saedetox.eval.toxicity import toxicity_summary
from saedetox.io import atomic_write_json
from saedetox.judges.registry import get_judge
from saedetox.methods.base import Method
from saedetox.model.load import LoadedModel
from saedetox.progress import progress_bar


def load_prompts(cfg: EvalConfig, data_dir: str | None = None) -> list[Prompt]:
    """The run's prompts: a reference set or a file, subset to ``n_prompts`` with the seed."""
    src = cfg.prompts
    if is_reference_prompt_set(src):
        prompts = reference_prompts(src, data_dir)
    else:
        p = Path(src)
        prompts = read_rtp(p) if p.suffix in (".jsonl", ".json") else [Prompt(t) for t in read_lines(p)]
    if cfg.n_prompts is not None and cfg.n_prompts < 0:
        raise SaedetoxError("--n-prompts must be 0 (all prompts) or positive.")
    if cfg.n_prompts and cfg.n_prompts < len(prompts):
        idx = sorted(random.Random(cfg.seed).sample(range(len(prompts)), cfg.n_prompts))
        prompts = [prompts[i] for i in idx]
    return prompts


def _fingerprint(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("saedetox", "torch", "transformers", "sae-lens", "lm-eval", "alt-profanity-check", "scikit-learn"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


# --------------------------------------------------------------------------- generation (resumable)


def generate_all(
    lm: LoadedModel, prompts: list[Prompt], method: Method, sampling: SamplingConfig, run: Path
) -> list[list[str]]:
    """Continuations per prompt, with ``method`` active; finished batches in ``RUN/generations.jsonl`` are kept."""
    log = GenerationLog(run / "generations.jsonl")
    bounds = batch_bounds(len(prompts), sampling)
    done = log.done_batches(bounds)
    texts = [method.prefix + p.text for p in prompts]
    todo = len(bounds) - len(done)
    if todo:
        with method.context(), progress_bar(f"generate [{method.name}]", total=len(bounds), completed=len(done)) as bar:
            for b, samples in iter_samples(lm, texts, sampling, skip_batches=done):
                s, e = bounds[b]
                rows = []
                for i in range(s, e):
                    conts = sorted((x for x in samples if x.prompt_index == i), key=lambda x: x.sample_index)
                    rows.append(
                        {
                            "i": i,
                            "batch": b,
                            "prompt": prompts[i].text,
                            "prompt_toxicity": prompts[i].toxicity,
                            "continuations": [c.text for c in conts],
                        }
                    )
                log.append(rows)
                bar.advance(1)
    return [log.rows[i]["continuations"] for i in range(len(prompts))]


# --------------------------------------------------------------------------- scoring


def score_judges(judges: Sequence[str], conts: list[list[str]], run: Path) -> dict[str, np.ndarray]:
    """Scores [n_prompts, k] per judge, cached in ``RUN/scores.npz``."""
    cache = run / "scores.npz"
    have: dict[str, np.ndarray] = {}
    shape = (len(conts), len(conts[0]) if conts else 0)
    if cache.exists():
        with np.load(cache) as z:
            have = {k: z[k] for k in z.files if z[k].shape == shape}
    flat = [c for row in conts for c in row]
    for name in judges:
        if name not in have:
            have[name] = np.asarray(get_judge(name).score(flat), dtype=np.float64).reshape(shape)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, **have)
    os.replace(tmp, cache)
    return {j: have[j] for j in judges}


def evaluate(
    lm: LoadedModel,
    run: str | Path,
    cfg: EvalConfig,
    method: Method | None = None,
    run_name: str | None = None,
    ref_lm: LoadedModel | None = None,
    run_config: dict[str, Any] | None = None,
    data_dir: str | None = None,
) -> dict[str, Any]:
    """Run the protocol; write ``RUN/metrics.json``; return the metrics object.

    ``data_dir`` is where the datasets live (prompt sets, held-out text, benchmark files).
    """
    t0 = time.time()
    method = method or Method()
    run = Path(run)
    run.mkdir(parents=True, exist_ok=True)
    prompts = load_prompts(cfg, data_dir)
    calibrate_method(lm, method, cfg, prompts, data_dir, run / "push_calibration.json")  # push levels; else no-op
    sampling = cfg.sampling
    config = {
        "run": run_name or run.name,
        "method": method.name,
        **method.details,
        **(run_config or {}),
        "model": lm.name,
        "prompts": cfg.prompts,
        "n_prompts": len(prompts),
        "subset_seed": cfg.seed,
        "sampling": asdict(sampling),
        "judges": list(cfg.judges),
        "prefix": method.prefix,
    }
    fp = _fingerprint({k: v for k, v in config.items() if k not in ("judges",)})
    cfg_path = run / "config.json"
    if cfg_path.exists():
        old = json.loads(cfg_path.read_text())
        if old.get("fingerprint") != fp:
            raise SaedetoxError(f"{run} holds a different run (its config differs); use a new --out folder.")
        done = run / "metrics.json"
        if done.exists():  # finished before: nothing to redo
            prev = json.loads(done.read_text())
            if prev.get("config", {}).get("judges") == list(cfg.judges) and bool(prev.get("capability")) == bool(
                cfg.capability
            ):
                return prev
    atomic_write_json(cfg_path, {"fingerprint": fp, **config})
    conts = generate_all(lm, prompts, method, sampling, run)
    steering = method.stats() if method.stats is not None else None  # gathered while generating
    gen_seconds = time.time() - t0
    scores = score_judges(cfg.judges, conts, run)
    ptox = [p.toxicity for p in prompts]
    toxicity = {
        j: toxicity_summary(s, prompt_toxicity=ptox, threshold=cfg.threshold, n_boot=cfg.n_boot, seed=cfg.seed)
        for j, s in scores.items()
    }
    ref = ref_lm or lm
    ppl = conditional_perplexity(
        ref, [p.text for p in prompts], conts, batch_size=cfg.ppl_batch_size, prepend_bos=sampling.prepend_bos
    )
    fluency: dict[str, Any] = {
        "ppl_conditional": ppl["ppl"],
        "ppl_ci": ppl.get("ppl_ci"),
        "n_dropped": ppl.get("n_dropped"),
        "n_empty": ppl.get("n_empty"),
        "reference_model": ref.name if ref_lm is not None else f"{lm.name} (unsteered)",
    }
    with method.context():
        if cfg.clean_texts:
            clean = heldout_texts(resolve_data_dir(data_dir))[: cfg.clean_texts]
            fluency["ppl_clean"] = clean_perplexity(lm, clean, prepend_bos=sampling.prepend_bos)
        capability = CapabilityScores()
        if cfg.capability:
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
        "generation_seconds": round(gen_seconds, 2),
        "wall_seconds": round(time.time() - t0, 2),
    }
    atomic_write_json(run / "metrics.json", result)
    return result
