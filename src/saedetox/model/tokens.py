"""Tokens: batches with BOS and padding, the BOS rule, plain encoding, and the context length."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from saedetox.errors import SaedetoxError

DEFAULT_CONTEXT = 1024  # when a config states no context length


def tokenize_batch(
    tokenizer: Any,
    texts: Sequence[str],
    prepend_bos: bool = True,
    padding_side: str = "left",
    device: torch.device | str = "cpu",
    max_length: int | None = None,
    truncation_side: str = "right",
) -> dict[str, torch.Tensor]:
    """Token ids + attention mask for a batch, BOS prepended once when asked, padded.

    Longer rows are cut to ``max_length``: at the end (``right``) or, for prompts, at the start
    (``left``, keeping a prepended BOS first).
    """
    if isinstance(texts, str):
        texts = [texts]
    if not texts:
        raise SaedetoxError("No prompts given.")
    for t in texts:
        if not isinstance(t, str) or not t.strip():
            raise SaedetoxError("Empty prompt: every prompt must contain some text.")
    enc = tokenizer(list(texts), add_special_tokens=True)["input_ids"]
    bos = tokenizer.bos_token_id
    rows = []
    for ids in enc:
        ids = list(ids)
        if bos is not None and ids[:2] == [bos, bos]:  # a text that starts with BOS (a chat template's) keeps one
            ids = ids[1:]
        if prepend_bos and bos is not None and (not ids or ids[0] != bos):
            ids = [bos] + ids
        if max_length is not None and len(ids) > max_length:
            if truncation_side == "left":
                head = ids[:1] if prepend_bos and bos is not None and ids[0] == bos else []
                ids = head + ids[len(ids) - (max_length - len(head)) :]
            else:
                ids = ids[:max_length]
        rows.append(ids)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    width = max(len(r) for r in rows)
    ids_t = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if padding_side == "left":
            ids_t[i, width - len(r) :] = torch.tensor(r)
            mask[i, width - len(r) :] = 1
        else:
            ids_t[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
    return {"input_ids": ids_t.to(device), "attention_mask": mask.to(device)}


def bos_id(tokenizer: Any) -> int:
    """The token prepended as BOS: the tokenizer's BOS, else its EOS (lm-eval's prefix-token rule)."""
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if bos is None:
        raise SaedetoxError("The tokenizer has neither a BOS nor an EOS token; pass prepend_bos=False.")
    return int(bos)


def with_bos(tokenizer: Any, ids: list[int], prepend_bos: bool) -> list[int]:
    """``ids`` with the BOS of :func:`bos_id` in front when asked, unless they already start with it."""
    if not prepend_bos:
        return ids
    bos = bos_id(tokenizer)
    return ids if ids[:1] == [bos] else [bos, *ids]


def encode_text(tokenizer: Any, text: str) -> list[int]:
    """Token ids of ``text`` without special tokens (empty for an empty string)."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []


def max_positions(config: Any) -> int | None:
    """The model's context length from its HF config (``n_positions`` or ``max_position_embeddings``)."""
    return getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None)
