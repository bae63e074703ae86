"""Clean text windows for gate calibration: word windows cut from held-out LM-corpus chunks.

A conditional gate sees a prompt and its continuation (25–45 words on RealToxicityPrompts with
20 new tokens), so its false-open rate is measured on clean windows of that length, not on
short sentences. The windows come from the last :data:`GATE_CHUNKS` held-out chunks of the
reference corpus (:func:`saedetox.data.corpus.heldout_texts`); held-out clean perplexity reads
the first ``clean_texts`` chunks (200 by default, of 630), so the two never share a chunk at the
default settings. A stable hash of each chunk puts its windows in one of two parts:

| part | used for |
| --- | --- |
| ``select`` | choosing: the per-latent specificity filter, the joint gate calibration |
| ``test`` | reporting the set's clean false-open rate (chose nothing) |
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from saedetox.data.corpus import heldout_texts
from saedetox.data.roles import stable_unit
from saedetox.errors import SaedetoxError

GATE_CHUNKS = 200  # the last held-out chunks (ppl_clean reads the first ``clean_texts``)
WINDOW_PARTS = ("select", "test")
_SALT = "gate-windows"


def word_windows(texts: Sequence[str], words: int, max_per_text: int | None = None) -> list[str]:
    """Non-overlapping windows of exactly ``words`` whitespace-separated words, in order, per text."""
    if words < 1:
        raise SaedetoxError(f"A window needs at least one word, got {words}.")
    out: list[str] = []
    for text in texts:
        ws = text.split()
        got = [" ".join(ws[i : i + words]) for i in range(0, len(ws) - words + 1, words)]
        out.extend(got[:max_per_text] if max_per_text is not None else got)
    return out


def window_part(chunk: str) -> str:
    """``select`` or ``test``: the part a chunk's windows belong to (stable hash, 50/50)."""
    return "select" if stable_unit(chunk, _SALT) < 0.5 else "test"


def clean_windows(root: str | Path, words: int, part: str, max_per_text: int | None = None) -> list[str]:
    """Clean windows of ``words`` words from the gate chunks of part ``select`` or ``test``."""
    if part not in WINDOW_PARTS:
        raise SaedetoxError(f"Unknown window part '{part}': use {', '.join(WINDOW_PARTS)}.")
    chunks = heldout_texts(Path(root))[-GATE_CHUNKS:]
    return word_windows([c for c in chunks if window_part(c) == part], words, max_per_text)
