"""A run's continuations on its backend, written row by row to ``generations.jsonl`` (resumable).

Both backends generate the same batches (:func:`saedetox.eval.sampler.sampling.batch_members`) and
write each finished batch's rows at once, so a restarted run regenerates no finished batch:

* ``hf``: saedetox's decode loop, batch by batch (its random numbers depend on the batch);
* ``vllm``: vLLM, many batches per call (each prompt has its own seed, so the grouping changes no
  token), the method's steering compiled into the workers (a steerer: levels; a weight edit or
  AurA's folded dampening: the edited weights saved for vLLM to load). With ``data_parallel`` > 1 the
  batches are split over that many engines (:mod:`saedetox.eval.runs.data_parallel`). Rows also keep
  the continuations' token ids, from which the run's steering statistics are measured
  (:mod:`saedetox.eval.runs.steering_replay`).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

from saedetox.data.readers import Prompt
from saedetox.errors import SaedetoxError
from saedetox.eval.runs.generation_log import PUSH_TOTALS, GenerationLog
from saedetox.eval.runs.job import GenerationJob
from saedetox.eval.runs.runfolder import GENERATIONS
from saedetox.eval.runs.steering_replay import replay_steering
from saedetox.eval.sampler.backends import HF, SAMPLERS, VLLM
from saedetox.eval.sampler.sampling import (
    Sample,
    SamplingConfig,
    as_samples,
    batch_members,
    iter_samples,
    prompt_lengths,
    sample,
)
from saedetox.eval.sampler.vllm import VLLMOptions, chunks
from saedetox.methods.base import Method
from saedetox.model.load import LoadedModel
from saedetox.progress import note, progress_bar, warn
from saedetox.steering.steerer import Steerer


def generate_all(
    lm: LoadedModel,
    prompts: list[Prompt],
    method: Method,
    sampling: SamplingConfig,
    run: Path,
    vllm: VLLMOptions | None = None,
    contexts: list[str] | None = None,
) -> tuple[list[list[str]], dict[str, Any] | None]:
    """Continuations per prompt, with ``method`` active, and the steering statistics of all batches.

    Rows already in ``RUN/generations.jsonl`` are kept. A batch that was partly written when the run
    stopped is generated again as a whole and only its missing rows are appended. On ``hf`` a steering
    method's statistics are stored with each batch's rows
    (:data:`~saedetox.eval.runs.generation_log.PUSH_TOTALS`) and summed over every batch in batch order;
    on ``vllm`` they are measured on every stored continuation. Either way a resumed run records the
    statistics of one that never stopped. ``contexts`` (default: the prompts) are what follows the
    method's prefix; an attacked run's context differs from its prompt and is recorded in each row as
    ``attacked_prompt``.
    """
    log = GenerationLog(run / GENERATIONS)
    log.check([p.text for p in prompts], sampling.n_samples)
    contexts = contexts if contexts is not None else [p.text for p in prompts]
    texts = [method.prefix + c for c in contexts]
    batches = batch_members(prompt_lengths(lm, texts, sampling.chat), sampling)
    job = GenerationJob(lm, prompts, texts, method, sampling, batches, log, vllm or VLLMOptions(), contexts)
    done = log.done_batches(batches)
    todo = [b for b in range(len(batches)) if b not in done]
    steerer = method.steerer if method.stats is not None else None
    if todo:
        bar_ctx = progress_bar(f"generate [{method.name}]", total=len(batches), completed=len(done))
        if steerer is not None:
            steerer.reset_stats()  # only the generated batches count
        with bar_ctx as bar:
            GENERATORS[sampling.backend](job, todo, lambda: bar.advance(1))
    log.finish()
    conts = [log.rows[i]["continuations"] for i in range(len(prompts))]
    return conts, _statistics(job, run)


def _statistics(job: GenerationJob, run: Path) -> dict[str, Any] | None:
    """The run's steering statistics over every stored batch: summed from each batch's stored totals (hf), or
    measured on every stored continuation by one teacher-forced HF pass (vllm)."""
    method = job.method
    if method.stats is None:
        return None
    if method.steerer is None:
        if job.sampling.backend == VLLM and method.replay is not None:
            from saedetox.eval.sampler.vllm import encode_prompts

            note("measuring the method's statistics on the continuations (HF model, teacher-forced)")
            conts = [job.log.rows[i]["continuation_ids"] for i in range(len(job.prompts))]
            method.replay(encode_prompts(job.lm, job.texts, job.sampling), conts, job.sampling.max_new_tokens)
        return method.stats()
    if job.sampling.backend == VLLM:
        note("measuring the steering statistics on the continuations (HF model, teacher-forced)")
        ids = [job.log.rows[i]["continuation_ids"] for i in range(len(job.prompts))]
        replay_steering(job.lm, method, job.texts, ids, job.sampling)
        return method.stats()
    stored = job.log.batch_totals(job.batches)
    if any(t is None for t in stored):
        warn(
            f"{sum(t is None for t in stored)} of {len(job.batches)} batches in {run / GENERATIONS} carry no steering "
            "statistics (written by an older version); the effective push covers the other batches only."
        )
    return method.steerer.stats(batches=[t for t in stored if t is not None])


def _generate_hf(job: GenerationJob, todo: list[int], advance: Callable[[], None]) -> None:
    skip = set(range(len(job.batches))) - set(todo)
    with job.method.context():
        for b, samples in iter_samples(job.lm, job.texts, job.sampling, skip_batches=skip, batches=job.batches):
            rows = []
            for i in job.batches[b]:
                conts = sorted((x for x in samples if x.prompt_index == i), key=lambda x: x.sample_index)
                rows.append(job.row(i, b, [c.text for c in conts]))
            if job.method.stats is not None and job.method.steerer is not None:
                rows[0][PUSH_TOTALS] = job.method.steerer.batch_totals()  # stored with the batch: resumes count it
            job.log.append(rows)
            advance()


def vllm_form(method: Method) -> tuple[Steerer | None, Callable[[], AbstractContextManager[Any]] | None]:
    """How ``method`` runs on vLLM: (its steerer, compiled into levels; its weight form, saved for vLLM)."""
    if method.steerer is not None:
        return method.steerer, None
    if method.weights is not None:
        return None, method.weights
    if method.context is nullcontext or method.request_args is not None:  # nothing, or sent with each request
        return None, None
    raise SaedetoxError(
        f"Method '{method.name}' runs on the hf backend only: its hooks are neither steering levels nor a weight "
        "edit vLLM can load. Evaluate it with the hf backend."
    )


def sample_method(
    lm: LoadedModel, method: Method, prompts: list[str], cfg: SamplingConfig, backend: str = HF
) -> list[list[Sample]]:
    """:func:`~saedetox.eval.sampler.sampling.sample` with ``method`` active (its prefix before each prompt); on
    ``vllm`` in the form :func:`vllm_form` gives it, with its request arguments."""
    texts = [method.prefix + p for p in prompts]
    if backend != VLLM:
        with method.context():
            return sample(lm, texts, cfg, backend=HF)
    from saedetox.eval.sampler.vllm import sample_vllm  # deferred: vLLM is an optional extra

    steerer, weights = vllm_form(method)
    extra = method.request_args() if method.request_args is not None else None
    return as_samples(lm, sample_vllm(lm, texts, replace(cfg, sampler=SAMPLERS[VLLM]), steerer, weights, extra))


def _generate_vllm(job: GenerationJob, todo: list[int], advance: Callable[[], None]) -> None:
    from saedetox.eval.sampler.vllm import encode_prompts, run_engine  # deferred: vLLM is an optional extra

    steerer, weights = vllm_form(job.method)
    if job.vllm.data_parallel > 1:
        from saedetox.eval.runs.data_parallel import generate_data_parallel

        generate_data_parallel(job, todo, steerer, weights, advance)
        return
    ids = encode_prompts(job.lm, job.texts, job.sampling)
    with run_engine(job.lm, steerer, weights, job.vllm) as engine:
        for chunk in chunks(todo, job.batches, job.sampling.n_samples):
            write_chunk(job, engine, ids, chunk, advance)


def write_chunk(job: GenerationJob, engine: Any, ids: list[list[int]], chunk: list[int], advance: Callable) -> None:
    """Generate the batches of ``chunk`` in one vLLM call and append their rows, batch by batch."""
    from saedetox.eval.sampler.vllm import sample_rows

    members = [i for b in chunk for i in job.batches[b]]
    extra = job.method.request_args() if job.method.request_args is not None else None
    got = sample_rows(engine, [ids[i] for i in members], members, job.sampling, job.lm.tokenizer.eos_token_id, extra)
    job.append_chunk(chunk, dict(zip(members, got, strict=True)), advance)


GENERATORS: dict[str, Callable[[GenerationJob, list[int], Callable[[], None]], None]] = {
    HF: _generate_hf,
    VLLM: _generate_vllm,
}
