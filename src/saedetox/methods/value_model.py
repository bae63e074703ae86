"""Rectification's value model: ``Q_D(s, ·)`` for every next token, from a small GPT-2 with the LM's tokenizer.

As in the official code (a GPT-2 whose LM-head outputs are read as Q-values), the model is a
GPT-2 body and a linear head ``d → V`` whose outputs are ``Q_D(s, a)`` for each token ``a`` (clipped
to [−1, 0] where used). Here it is small: ``n_layers`` blocks (default 1). When the LM itself is a
GPT-2, the body starts as a copy of its token and position embeddings, its first ``n_layers``
blocks and its final norm (the official code starts from GPT-2 small, a smaller model with the
same tokenizer as the GPT-2 XL it rectifies); otherwise it starts from a random initialisation
of the LM's width (at most 256). The head starts at zero: an untrained value model sees no
dead end (``Q_D = 0`` everywhere).

:class:`ValueProcessor` is the per-step logits processor of the HF decode loop
(:mod:`saedetox.model.logits`): it keeps the value model's own KV cache across the steps of a
batch and applies :func:`saedetox.methods.dead_end.rectify`.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import DynamicCache, GPT2Config, GPT2Model

from saedetox.errors import SaedetoxError
from saedetox.io import atomic_save_torch, load_torch_file
from saedetox.methods.dead_end import ROUNDS, RectifyStats, rectify, request_args
from saedetox.model.load import LoadedModel

FORMAT = "saedetox-rectification-value-v1"
#: the name transformers gives the KV cache argument (``cache`` in new versions, ``past_key_values`` before)
_CACHE_ARG = "cache" if "cache" in inspect.signature(GPT2Model.forward).parameters else "past_key_values"


class ValueModel(nn.Module):
    """A GPT-2 body and a head of one Q-value per token: ``forward(ids, mask, positions, cache) -> [B, T, V]``."""

    def __init__(self, config: GPT2Config) -> None:
        super().__init__()
        self.config = config
        self.body = GPT2Model(config)
        self.head = nn.Linear(config.n_embd, config.vocab_size)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor | None = None,
        cache: DynamicCache | None = None,
    ) -> torch.Tensor:
        if position_ids is None:
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp_min(0)
        h = self.body(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=cache is not None,
            **{_CACHE_ARG: cache},
        ).last_hidden_state
        return self.head(h)


def build_value_model(lm: LoadedModel, n_layers: int = 1, seed: int = 0) -> ValueModel:
    """A fresh value model for ``lm`` (see the module docstring); its head is zero."""
    if n_layers < 1:
        raise SaedetoxError(f"The value model needs at least one layer, got {n_layers}.")
    src = lm.model.config
    vocab = lm.model.get_output_embeddings().weight.shape[0]
    positions = int(lm.max_positions or 1024)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if getattr(src, "model_type", None) == "gpt2" and n_layers <= src.n_layer:
            cfg = GPT2Config(**{**src.to_dict(), "n_layer": n_layers, "vocab_size": vocab})
            vm = ValueModel(cfg)
            body = lm.model.transformer.state_dict()
            keep = {k: v for k, v in body.items() if not k.startswith("h.") or int(k.split(".")[1]) < n_layers}
            vm.body.load_state_dict({k: v.float() for k, v in keep.items()}, strict=False)
        else:
            d = min(256, int(lm.d_model))
            cfg = GPT2Config(vocab_size=vocab, n_positions=positions, n_embd=d, n_layer=n_layers, n_head=4)
            vm = ValueModel(cfg)
    return vm.float().eval()


def value_identity(vm: ValueModel) -> str:
    """A digest of the value model's config and every weight (16 hex digits)."""
    h = hashlib.sha256(repr(sorted(vm.config.to_diff_dict().items())).encode())
    for name, t in sorted(vm.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def save_value_model(vm: ValueModel, path: str | Path, meta: dict[str, Any]) -> None:
    """Write the value model, with ``meta`` (how it was trained), atomically to ``path``."""
    state = {k: v.detach().cpu() for k, v in vm.state_dict().items()}
    atomic_save_torch({"format": FORMAT, "config": vm.config.to_dict(), "state": state, "meta": meta}, path)


def load_value_model(path: str | Path) -> tuple[ValueModel, dict[str, Any]]:
    """A value model written by :func:`save_value_model`, and its ``meta``."""
    blob = load_torch_file(path, FORMAT, f"rectification value model ({FORMAT})")
    vm = ValueModel(GPT2Config(**blob["config"]))
    vm.load_state_dict(blob["state"])
    return vm.float().eval(), dict(blob.get("meta", {}))


class ValueProcessor:
    """The HF decode loop's logits processor: ``Q_D`` from the value model, then :func:`rectify` with ``eps``.

    ``file``: where the value model is saved, or a function that saves it and says where (called once, when
    first needed); with it the processor also runs on vLLM (:attr:`request_args`).
    """

    def __init__(
        self, vm: ValueModel, eps: float, rounds: int = ROUNDS, file: str | Path | Callable[[], Path] | None = None
    ) -> None:
        self.vm, self.eps, self.rounds = vm, eps, rounds
        self.file = file
        self.stats = RectifyStats()
        self._cache: DynamicCache | None = None
        self._length = 0

    @property
    def request_args(self) -> dict[str, Any] | None:
        """The vLLM requests' ``extra_args`` that apply the same rule (None: the value model is in memory only)."""
        if callable(self.file):
            self.file = self.file()
        return None if self.file is None else request_args(str(self.file), self.eps, self.rounds)

    @torch.inference_mode()
    def q_values(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``Q_D(s, ·)`` ``[rows, V]`` after the last column of ``input_ids``; cached when one token was added."""
        dev = next(self.vm.parameters()).device
        ids, mask = input_ids.to(dev), attention_mask.to(dev)
        if self._cache is not None and ids.shape[1] == self._length + 1 and self._rows == ids.shape[0]:
            pos = mask.long().sum(-1, keepdim=True) - 1
            q = self.vm(ids[:, -1:], mask, pos, self._cache)
        else:  # a new batch (or a sequence this cache has not seen): encode it whole
            self._cache, self._rows = DynamicCache(), ids.shape[0]
            q = self.vm(ids, mask, None, self._cache)
        self._length = ids.shape[1]
        return q[:, -1]

    def __call__(
        self, step: int, input_ids: torch.Tensor, attention_mask: torch.Tensor, scores: torch.Tensor
    ) -> torch.Tensor:
        if step == 0:
            self._cache = None
        q = self.q_values(input_ids, attention_mask).to(scores.device)
        return rectify(scores, q, self.eps, self.rounds, self.stats)
