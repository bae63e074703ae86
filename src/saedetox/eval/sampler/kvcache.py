"""A preallocated KV cache for the decode loop, layer by layer, with transformers' own layers as the fallback.

transformers' ``DynamicCache`` concatenates the whole past onto every new key at every step (a
copy of the cache per token: 11–26 % of decode time at our sizes), and ``StaticCache`` attends
over its empty tail. :class:`PreallocLayer` writes into one ``[B, H, max_len, D]`` buffer and
returns narrowed views of the filled part: no copy of the past, no attention over empty slots,
and the same ``get_seq_length`` / ``get_mask_sizes`` semantics as a dynamic layer, so masks,
position handling and hooks that read the cache see what ``generate`` shows them.

:func:`new_cache` reads the model's layer types (as ``DynamicCache(config=...)`` does): full
attention layers get a :class:`PreallocLayer`; sliding-window layers (Gemma-2, Mistral) get one
too when the whole sequence fits the window (nothing is ever evicted, so the window changes
nothing); every other layer (a sliding window the sequence outgrows, chunked, linear or shared
attention) gets transformers' own dynamic layer for that type.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import DYNAMIC_LAYER_TYPE_MAPPING, Cache, DynamicLayer, get_layer_types_and_kwargs

SLIDING = ("sliding_attention", "chunked_attention")


class PreallocLayer(DynamicLayer):
    """A dynamic cache layer backed by one preallocated buffer per keys and values."""

    is_croppable = False

    def __init__(self, max_len: int, sliding: bool = False) -> None:
        super().__init__()
        self.max_len = int(max_len)
        self.is_sliding = sliding  # the mask builder picks the layer whose sizes it reads by this flag
        self.length = 0
        self._k = self._v = torch.empty(0)

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        b, h, _, dk = key_states.shape
        self.device = key_states.device
        self._k = torch.empty(b, h, self.max_len, dk, dtype=key_states.dtype, device=self.device)
        self._v = torch.empty(b, h, self.max_len, value_states.shape[-1], dtype=value_states.dtype, device=self.device)
        self.is_initialized = True

    def _views(self) -> None:
        self.keys, self.values = self._k[:, :, : self.length], self._v[:, :, : self.length]

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        n = key_states.shape[-2]
        if self.length + n > self.max_len:
            raise RuntimeError(f"KV cache full: {self.length} + {n} positions > {self.max_len}.")
        self._k[:, :, self.length : self.length + n].copy_(key_states)
        self._v[:, :, self.length : self.length + n].copy_(value_states)
        self.length += n
        self._views()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def get_max_length(self) -> int:
        return self.max_len

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self.length:
            self._k = _repeat_filled(self._k, self.length, repeats)
            self._v = _repeat_filled(self._v, self.length, repeats)
            self._views()

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.length:
            self._k, self._v = self._k[indices], self._v[indices]
            self._views()


def _repeat_filled(buf: torch.Tensor, length: int, repeats: int) -> torch.Tensor:
    """``buf`` with every row repeated ``repeats`` times (prompt-major); only the filled part is copied."""
    b, h, n, d = buf.shape
    out = buf.new_empty(b * repeats, h, n, d)
    out.view(b, repeats, h, n, d)[:, :, :, :length] = buf[:, None, :, :length]
    return out


def new_cache(model: Any, max_len: int) -> Cache:
    """An empty cache for ``model`` that will hold at most ``max_len`` positions per row."""
    config = model.config
    try:
        types, kwargs = get_layer_types_and_kwargs(config.get_text_config(decoder=True))
    except Exception:  # noqa: BLE001  (a config transformers cannot read layer types from: its own default cache)
        return DynamicCache(config=config)
    layers: list[Any] = []
    for kind, kw in zip(types, kwargs, strict=True):
        window = kw.get("sliding_window")
        if kind == "full_attention":
            layers.append(PreallocLayer(max_len))
        elif kind in SLIDING and window is not None and max_len <= int(window):
            layers.append(PreallocLayer(max_len, sliding=True))
        elif kind in DYNAMIC_LAYER_TYPE_MAPPING:
            layers.append(DYNAMIC_LAYER_TYPE_MAPPING[kind](**kw))
        else:
            return DynamicCache(config=config)
    return Cache(layers=layers)


_PARAMS: dict[type, frozenset[str]] = {}


def forward_params(model: Any) -> frozenset[str]:
    """The keyword arguments ``model.forward`` takes (the cache is ``cache`` from transformers 5.24 on)."""
    if type(model) not in _PARAMS:
        _PARAMS[type(model)] = frozenset(inspect.signature(model.forward).parameters)
    return _PARAMS[type(model)]


def repeat_rows(cache: Cache, repeats: int) -> None:
    """Repeat every row of a filled cache ``repeats`` times in place (row i → rows i·r … i·r + r − 1)."""
    if repeats > 1:
        cache.batch_repeat_interleave(repeats)
