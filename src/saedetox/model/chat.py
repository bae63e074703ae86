"""Chat models: a prompt wrapped in the tokenizer's chat template, as one user turn awaiting the reply.

:func:`render_chat` is the one place a prompt is rendered; discovery, sampling and evaluation call
it (through :func:`chat_texts`) when asked to (``chat=True``, ``--chat``, ``chat: true``). The
rendered text carries the template's own special tokens (often a BOS): tokenising it never adds a
second BOS (:func:`saedetox.model.tokens.tokenize_batch`), and a BOS is prepended only when the
template does not begin with one and BOS is asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from saedetox.errors import SaedetoxError


def check_chat(tokenizer: Any, name: str = "the model") -> None:
    """Refuse chat prompts for a tokenizer without a chat template, in one line."""
    if not getattr(tokenizer, "chat_template", None):
        raise SaedetoxError(
            f"The tokenizer of {name} has no chat template, so prompts cannot be wrapped as chat turns: "
            "turn chat off, or use the instruction-tuned model, whose tokenizer has one."
        )


def render_chat(tokenizer: Any, prompt: str) -> str:
    """``prompt`` as one user message in the tokenizer's chat template, followed by the assistant's turn."""
    check_chat(tokenizer)
    messages = [{"role": "user", "content": prompt}]
    return str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))


def chat_texts(tokenizer: Any, texts: Sequence[str], chat: bool) -> list[str]:
    """``texts`` rendered by :func:`render_chat` when ``chat``, else unchanged."""
    if not chat:
        return list(texts)
    check_chat(tokenizer)
    if any(not isinstance(t, str) or not t.strip() for t in texts):
        raise SaedetoxError("Empty prompt: every prompt must contain some text.")
    return [render_chat(tokenizer, t) for t in texts]
