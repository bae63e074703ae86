"""A vLLM run over several engines: vLLM's own data parallelism (``data_parallel_size``), not a scheduler.

vLLM's offline ``LLM`` refuses data parallelism for dense models; its engine client (``AsyncLLM``, the
one behind ``vllm serve --data-parallel-size N``) runs N engine cores, one per GPU (``mp``) or spread
over a Ray cluster (``data_parallel_backend="ray"``), and balances requests between them. saedetox
hands it the run's requests a chunk at a time; the steering reaches every engine core through the
plugin (:mod:`saedetox.serving.plugin`: ``SAEDETOX_LEVELS`` names the levels file). Each prompt
samples with its own seed (:func:`saedetox.eval.sampler.vllm.prompt_seed`), so which engine serves
it changes no token; rows are written batch by batch as chunks finish, so a stopped run resumes
with the batches it has not written, exactly as with one engine.
"""

from __future__ import annotations

import asyncio
import gc
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from saedetox.eval.runs.job import GenerationJob
from saedetox.eval.sampler.vllm import RUN_LEVEL, chunks, cut_at_eos, encode_prompts, engine_settings, prompt_seed
from saedetox.eval.sampler.vllm import request_params as vllm_params
from saedetox.steering.steerer import Steerer


@contextmanager
def _env(**values: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def generate_data_parallel(
    job: GenerationJob,
    todo: list[int],
    steerer: Steerer | None,
    weights: Callable[[], AbstractContextManager[Any]] | None,
    advance: Callable[[], None],
) -> None:
    """Generate the ``todo`` batches of ``job`` on ``job.vllm.data_parallel`` vLLM engines."""
    from saedetox.serving.engine import EXTENSION, build_levels, engine_defaults
    from saedetox.serving.plugin import ENV
    from saedetox.serving.source import model_folder

    ids = encode_prompts(job.lm, job.texts, job.sampling)
    with tempfile.TemporaryDirectory(prefix="saedetox-levels-") as tmp, model_folder(job.lm, weights) as folder:
        levels = build_levels(job.lm, {"off": None, RUN_LEVEL: steerer}, Path(tmp) / "levels.pt")
        settings = engine_defaults(
            {
                **engine_settings(job.lm, job.vllm),
                "model": folder,
                "data_parallel_size": job.vllm.data_parallel,
                "data_parallel_backend": job.vllm.data_parallel_backend,
                "worker_extension_cls": EXTENSION,
            }
        )
        with _env(**{ENV: str(levels)}):
            asyncio.run(_generate(job, todo, ids, settings, advance))


async def _generate(
    job: GenerationJob, todo: list[int], ids: list[list[int]], settings: dict[str, Any], advance: Callable[[], None]
) -> None:
    from vllm import SamplingParams
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.inputs import TokensPrompt
    from vllm.v1.engine.async_llm import AsyncLLM

    from saedetox.serving.compiled import LEVEL_KEY

    engine: Any = AsyncLLM.from_engine_args(AsyncEngineArgs(**settings))
    params = vllm_params(job.sampling)
    extra = job.method.request_args() if job.method.request_args is not None else {}
    eos = job.lm.tokenizer.eos_token_id

    async def sample(i: int, j: int) -> list[int]:
        seed = prompt_seed(job.sampling.seed, i) + j  # as SteeredLLM.sample: one request per sample
        sp = SamplingParams(seed=seed, extra_args={**extra, LEVEL_KEY: RUN_LEVEL}, **params)
        final = None
        async for out in engine.generate(TokensPrompt(prompt_token_ids=ids[i]), sp, f"p{i}.{j}-{uuid.uuid4().hex}"):
            final = out
        assert final is not None and final.finished
        return cut_at_eos(final.outputs[0].token_ids, eos)

    async def one(i: int) -> list[list[int]]:
        return list(await asyncio.gather(*(sample(i, j) for j in range(job.sampling.n_samples))))

    try:
        for chunk in chunks(todo, job.batches, job.sampling.n_samples):
            members = [i for b in chunk for i in job.batches[b]]
            rows = dict(zip(members, await asyncio.gather(*(one(i) for i in members)), strict=True))
            job.append_chunk(chunk, rows, advance)
    finally:
        engine.shutdown()
        engine = None  # finalised now, while the modules its finaliser needs are still loaded
        gc.collect()
