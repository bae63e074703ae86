"""Rectification in vLLM: a V1 logits processor that applies :func:`saedetox.methods.dead_end.rectify`.

Give the class to the engine, ``LLM(model, logits_processors=[RectificationLogitsProcessor])``, and
ask for it per request::

    SamplingParams(extra_args={"rectification": {"value_model": "/path/to/value.pt", "epsilon": 0.1}})

(:func:`saedetox.methods.dead_end.request_args` writes it; an optional ``"rounds"`` sets the
cap-and-renormalise rounds, default 3). ``saedetox evaluate --backend vllm --method rectification`` and
``sample(..., backend="vllm")`` under a rectification method's context send it with every request;
their engines load this processor (:data:`PROCESSOR`).

``value_model`` is a file written by :func:`saedetox.methods.value_model.save_value_model` (the
cached value models of ``saedetox evaluate --method rectification`` are such files); ``epsilon`` is
the threshold ε (:data:`saedetox.methods.dead_end.RECTIFICATION_TIERS`). Requests without the key
are sampled as usual. Each request keeps its own KV cache of the value model, so a step encodes
only the tokens added since the last one, on the device of the engine's logits. vLLM 0.32's sampler
applies it (as every logits processor that can change the argmax) to the model's float32 logits before
penalties, temperature and top-k/top-p; the HF decode loop applies it at the same place, so the cap
acts on the LM's own next-token distribution on both backends, as in the official code (an HF
``logits_processor`` runs before ``generate``'s temperature and top-p warpers).

Imported only where vLLM is installed (an optional extra).
"""

from __future__ import annotations

import os
from typing import Any

import torch
from transformers import DynamicCache
from vllm import SamplingParams
from vllm.v1.sample.logits_processor import AdapterLogitsProcessor

from saedetox.methods.dead_end import REQUEST_KEY, ROUNDS, rectify
from saedetox.methods.value_model import ValueModel, load_value_model

EXTRA_KEY = REQUEST_KEY
#: the processor by its fully qualified class name, as an engine's ``logits_processors`` entry
PROCESSOR = "saedetox.serving.rectify:RectificationLogitsProcessor"


def _request_settings(params: SamplingParams) -> tuple[str, float, int] | None:
    """``(value model path, ε, rounds)`` a request asks for, or None; a malformed request is a ValueError."""
    spec: Any = (params.extra_args or {}).get(EXTRA_KEY)
    if spec is None:
        return None
    if not isinstance(spec, dict) or not isinstance(spec.get("value_model"), str):
        raise ValueError(f'extra_args["{EXTRA_KEY}"] must be {{"value_model": PATH, "epsilon": ε}}.')
    eps = float(spec.get("epsilon", 0.0))
    if not 0.0 <= eps < 1.0:
        raise ValueError(f"rectification epsilon must be in [0, 1), got {eps:g}.")
    rounds = int(spec.get("rounds", ROUNDS))
    if rounds < 1:
        raise ValueError(f"rectification rounds must be at least 1, got {rounds}.")
    return spec["value_model"], eps, rounds


class _Request:
    """One request's rectification: the value model's cache over its prompt and output tokens so far."""

    def __init__(self, vm: ValueModel, eps: float, rounds: int = ROUNDS) -> None:
        self.vm, self.eps, self.rounds = vm, eps, rounds
        self.cache: DynamicCache | None = None
        self.seen = 0

    @torch.inference_mode()
    def __call__(self, prompt_ids: list[int], output_ids: list[int], logits: torch.Tensor) -> torch.Tensor:
        ids = list(prompt_ids) + list(output_ids)
        if self.cache is None or self.seen >= len(ids):  # first step (or a preempted request, recomputed)
            self.cache, self.seen = DynamicCache(), 0
        dev = next(self.vm.parameters()).device
        new = torch.tensor([ids[self.seen :]], device=dev)
        mask = torch.ones(1, len(ids), dtype=torch.long, device=dev)
        pos = torch.arange(self.seen, len(ids), device=dev).unsqueeze(0)
        q = self.vm(new, mask, pos, self.cache)[0, -1]
        self.seen = len(ids)
        return rectify(logits.unsqueeze(0), q.unsqueeze(0).to(logits.device), self.eps, self.rounds)[0]


class RectificationLogitsProcessor(AdapterLogitsProcessor):
    """The vLLM V1 logits processor (see the module docstring); value models are loaded once per file version."""

    def __init__(self, vllm_config: Any, device: torch.device, is_pin_memory: bool) -> None:
        super().__init__(vllm_config, device, is_pin_memory)
        self.device = device
        self._models: dict[tuple[str, int], ValueModel] = {}

    @classmethod
    def validate_params(cls, sampling_params: SamplingParams) -> None:
        _request_settings(sampling_params)

    def is_argmax_invariant(self) -> bool:
        return False  # a capped token can lose its place at the top

    def new_req_logits_processor(self, params: SamplingParams) -> Any:
        settings = _request_settings(params)
        if settings is None:
            return None
        path, eps, rounds = settings
        try:
            key = (path, os.stat(path).st_mtime_ns)  # a file rewritten in place is loaded again
        except OSError as err:
            raise ValueError(f"Cannot read the value model {path}: {err}") from None
        if key not in self._models:
            self._models[key] = load_value_model(path)[0].to(self.device)
        return _Request(self._models[key], eps, rounds)
