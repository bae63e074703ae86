"""The decode loop behind :mod:`saedetox.eval.sampler.sampling`: what ``generate`` does for nucleus sampling, leaner.

* **One prefill per unique prompt.** A batch of P left-padded prompts is encoded once; the KV
  cache, the last logits and every hook's per-sequence state (:func:`saedetox.model.sites.repeat_batch_state`,
  e.g. a Steerer's conditional gates) are then repeated ``n_repeat`` times. Rows come out
  prompt-major: row ``i · n_repeat + j`` is sample j of prompt i.
* **What ``generate`` feeds the model.** Position ids ``cumsum(mask) − 1`` (pads 0), then the last
  one + 1 per step; the 2-D attention mask grows by one column of ones per step (dropped, as
  ``generate`` drops it, when the prompts have no padding); a row that emitted EOS is fed pad
  afterwards; the loop stops when every row has emitted EOS or after ``max_new_tokens``.
  Forward hooks therefore see the ``input_ids``, ``attention_mask``, ``position_ids`` and
  ``cache`` they would see under ``generate``.
* **Less work per step.** A preallocated cache (:mod:`saedetox.eval.sampler.kvcache`), logits for the
  last position only, ``torch.inference_mode``, and the sort-free Gumbel nucleus sampler
  (:mod:`saedetox.eval.sampler.nucleus`) on common random numbers (:mod:`saedetox.eval.sampler.noise`).
* **Host synchronisation.** On the CPU a host check costs nothing, so the stop test runs each
  step. On an accelerator the loop never waits for the device inside a step: the sampler sorts
  instead of checking rows on the host, and "has every row finished?" is read one step late
  from a non-blocking copy (so a batch that finished at step t still runs step t + 1, which only
  emits pad). The tokens are the same either way.
* **Attention on CUDA.** The loop runs with every SDPA backend but cuDNN: cuDNN attention builds
  a plan for each new shape, and here every step has a new key length and every batch a new
  prompt width (on an H100 that planning cost more than the whole decode; BENCHMARKS.md).

* **Logits processors.** Processors attached to the model (:mod:`saedetox.model.logits`, a
  decoding-time method's) get the model's scores (before temperature) and the sequences so far
  each step; the sampler then applies temperature and top-p to what they return and draws on the
  same noise (vLLM applies its logits processors at the same place). With none attached the loop
  is unchanged.

``DecodeSettings(use_cache=False)`` runs the same loop without a cache (the whole sequence every step): the
reference the cached loop is tested against.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from saedetox.eval.sampler.kvcache import forward_params, new_cache, repeat_rows
from saedetox.eval.sampler.noise import NoiseStream
from saedetox.eval.sampler.nucleus import nucleus_sample_exponential
from saedetox.model.guard import FiniteFlag, check_scores
from saedetox.model.logits import logits_processors
from saedetox.model.sites import repeat_batch_state

#: attention backends of the decode loop on CUDA: all but cuDNN, which builds a plan for every new shape (a new
#: key length every step, a new prompt width every batch) and was slower than the attention itself (BENCHMARKS.md)
_NO_CUDNN = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]


class _StopCheck:
    """Whether every row is done: at once on the CPU, one step late (never blocking the device) elsewhere."""

    def __init__(self, device: torch.device) -> None:
        self.lagged = device.type == "cuda"
        self._pending: tuple[torch.Tensor, Any] | None = None

    def all_done(self, done: torch.Tensor) -> bool:
        if not self.lagged:
            return bool(done.all())
        prev, self._pending = self._pending, None
        flag = torch.empty((), dtype=torch.bool, pin_memory=True)
        flag.copy_(done.all(), non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        self._pending = (flag, event)
        if prev is None:
            return False
        prev[1].synchronize()  # the previous step's copy: already behind the work queued since
        return bool(prev[0])


def _sample(logits: torch.Tensor, step: int, noise: NoiseStream | None, top_p: float, temperature: float):
    if noise is None:
        return logits.argmax(-1)
    return nucleus_sample_exponential(logits, noise.exponential(step, tuple(logits.shape)), top_p, temperature)


@dataclass(frozen=True)
class DecodeSettings:
    """What :func:`lean_generate` generates: length, stop and pad tokens, rows per prompt, the nucleus, the cache."""

    max_new_tokens: int
    eos_token_id: int | None  # None: never stop early
    pad_token_id: int  # fed and emitted after a row's EOS
    n_repeat: int = 1  # sequences per prompt (rows prompt-major)
    top_p: float = 1.0
    temperature: float = 1.0
    use_cache: bool = True  # False: the whole sequence every step (the reference)


@torch.inference_mode()
def lean_generate(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    settings: DecodeSettings,
    noise: NoiseStream | None = None,
) -> torch.Tensor:
    """New tokens ``[P · n_repeat, max_new_tokens]`` (pad after EOS) for left-padded prompts ``input_ids`` ``[P, W]``.

    ``noise`` samples (Gumbel nucleus with ``top_p`` and ``temperature``); ``None`` is greedy.
    """
    s = settings
    max_new_tokens, eos_token_id, pad_token_id = s.max_new_tokens, s.eos_token_id, s.pad_token_id
    n_repeat, top_p, temperature, use_cache = s.n_repeat, s.top_p, s.temperature, s.use_cache
    dev = input_ids.device
    n_prompts, width = input_ids.shape
    rows, total = n_prompts * n_repeat, width + max_new_tokens
    mask0 = attention_mask.to(dtype=torch.long)
    padded = not bool(mask0.all())  # once per batch: `generate` drops an all-ones mask
    params = forward_params(model)
    extra: dict[str, Any] = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
    if use_cache:
        extra["cache_key"] = "cache" if "cache" in params else "past_key_values"
    out_tok = torch.full((rows, max_new_tokens), pad_token_id, dtype=torch.long, device=dev)
    done = torch.zeros(rows, dtype=torch.bool, device=dev)
    stop = _StopCheck(dev)
    attention = sdpa_kernel(_NO_CUDNN) if dev.type == "cuda" else nullcontext()
    with attention:
        feed = _Cached(model, input_ids, mask0, n_repeat, total, padded, extra) if use_cache else None
        if feed is None:
            feed = _Uncached(model, input_ids, mask0, n_repeat, padded, extra)
        logits = feed.first()
        finite = FiniteFlag() if dev.type == "cuda" else None  # on the device: one sync per batch, not per step
        processed = _Processed(model, input_ids, mask0, n_repeat, out_tok)
        for t in range(max_new_tokens):
            if processed.active:  # processors see the model's own scores; temperature and top-p follow
                logits = processed(t, logits)
            scores = logits if temperature == 1.0 or noise is None else logits / temperature
            if finite is None:
                check_scores(scores, t)  # one clear line instead of NaN tokens (the scores sampled from)
            else:
                finite.update(scores)
            tok = _sample(logits, t, noise, top_p, temperature)
            if eos_token_id is not None:
                tok = tok.masked_fill_(done, pad_token_id)
                done |= tok == eos_token_id
            out_tok[:, t] = tok
            if t == max_new_tokens - 1 or (eos_token_id is not None and stop.all_done(done)):
                break
            logits = feed.next(tok, t)
    if finite is not None:
        finite.check()
    return out_tok


class _Processed:
    """The logits processors attached to the model (:mod:`saedetox.model.logits`), fed the sequences so far."""

    def __init__(self, model: Any, ids: torch.Tensor, mask0: torch.Tensor, n_repeat: int, out: torch.Tensor) -> None:
        self.procs = logits_processors(model)
        self.active = bool(self.procs)
        if self.active:
            self.ids, self.mask = ids.repeat_interleave(n_repeat, dim=0), mask0.repeat_interleave(n_repeat, dim=0)
            self.out = out

    def __call__(self, t: int, scores: torch.Tensor) -> torch.Tensor:
        ids = torch.cat([self.ids, self.out[:, :t]], dim=1)
        mask = torch.cat([self.mask, torch.ones_like(self.out[:, :t])], dim=1)
        for proc in self.procs:
            scores = proc(t, ids, mask, scores)
        return scores


class _Cached:
    """Prefill the unique prompts once, repeat, then one token per row per step."""

    def __init__(
        self, model: Any, ids: torch.Tensor, mask0: torch.Tensor, n_repeat: int, total: int, padded: bool, extra: dict
    ) -> None:
        self.model, self.ids, self.mask0, self.n_repeat, self.width = model, ids, mask0, n_repeat, ids.shape[1]
        self.kw = {k: v for k, v in extra.items() if k != "cache_key"}
        self.cache = new_cache(model, total)
        self.kw[extra["cache_key"]] = self.cache
        self.pos0 = (mask0.cumsum(-1) - 1).masked_fill_(mask0 == 0, 0)
        self.mask: torch.Tensor | None = None
        if padded:
            self.mask = torch.ones(ids.shape[0] * n_repeat, total, dtype=torch.long, device=ids.device)
            self.mask[:, : self.width] = mask0.repeat_interleave(n_repeat, dim=0)

    def first(self) -> torch.Tensor:
        mask = self.mask0 if self.mask is not None else None
        out = self.model(input_ids=self.ids, attention_mask=mask, position_ids=self.pos0, use_cache=True, **self.kw)
        logits = out.logits[:, -1]
        self.pos = (self.pos0[:, -1:] + 1).repeat_interleave(self.n_repeat, dim=0)
        if self.n_repeat > 1:
            repeat_rows(self.cache, self.n_repeat)
            repeat_batch_state(self.model, self.n_repeat)
            logits = logits.repeat_interleave(self.n_repeat, dim=0)
        return logits

    def next(self, tok: torch.Tensor, t: int) -> torch.Tensor:
        mask = self.mask[:, : self.width + t + 1] if self.mask is not None else None
        out = self.model(
            input_ids=tok.unsqueeze(-1), attention_mask=mask, position_ids=self.pos, use_cache=True, **self.kw
        )
        self.pos = self.pos + 1
        return out.logits[:, -1]


class _Uncached:
    """No cache: every step feeds the whole sequence so far to the expanded batch (``generate(use_cache=False)``)."""

    def __init__(self, model: Any, ids: torch.Tensor, mask0: torch.Tensor, n_repeat: int, padded: bool, extra: dict):
        self.model, self.padded, self.kw = model, padded, extra
        self.ids = ids.repeat_interleave(n_repeat, dim=0)
        self.mask = mask0.repeat_interleave(n_repeat, dim=0)

    def first(self) -> torch.Tensor:
        pos = (self.mask.cumsum(-1) - 1).masked_fill_(self.mask == 0, 0)
        mask = self.mask if self.padded else None
        return self.model(input_ids=self.ids, attention_mask=mask, position_ids=pos, use_cache=False, **self.kw).logits[
            :, -1
        ]

    def next(self, tok: torch.Tensor, t: int) -> torch.Tensor:
        self.ids = torch.cat([self.ids, tok.unsqueeze(-1)], dim=1)
        self.mask = torch.cat([self.mask, torch.ones_like(self.mask[:, :1])], dim=1)
        return self.first()
