"""Deterministic, documented data splits of the reference world.

Every text belongs to exactly one role, decided by its source and, where a source is shared
between roles, by a stable hash of its text (so the split never depends on file order,
Python's hash seed or the machine):

| role | what | used by |
| --- | --- | --- |
| ``lm`` | ``lm_corpus/`` (minus held-out chunks), ParaDetox "cannot rewrite" comments, Jigsaw ``dev_*`` sentences, ParaDetox pairs in hash bucket [0, 0.3) | ``train-lm`` (and SAE training activations) |
| ``lm_heldout`` | 2% of ``lm_corpus/`` chunks by hash | held-out clean-text perplexity |
| ``discovery`` | ParaDetox pairs in [0.3, 0.8) | discovery's ``rank`` split: ranking SAE latents; the baselines' contrast data |
| ``discovery_select`` | ParaDetox pairs in [0.8, 0.9) | discovery's ``select`` split: the per-latent minimum-AUROC filter |
| ``discovery_test`` | ParaDetox pairs in [0.9, 1.0) | discovery's ``test`` split: every reported AUROC (never used to choose) |
| ``judge_train`` | Jigsaw ``test_10k_*`` sentences | ``train-judge`` |
| ``judge_test`` | Davidson tweets, ToxiGen sentences | judge ROC-AUC on the card |
| ``eval`` | RealToxicityPrompts (DecodingTrust challenging / non-toxic) | ``evaluate`` prompts |

The evaluation prompts are further split by a stable hash of their RTP id into ``dev`` (30%) and
``test`` (70%): ``challenging:dev`` is for developing and tuning methods, ``challenging:test`` for
reporting results on prompts that no tuning has seen (``challenging`` alone = all 1,196).

No evaluation prompt appears in any other role: ``tests/data/test_roles.py`` checks every
RealToxicityPrompts prompt against all LM, discovery and judge texts with :func:`prompt_overlap`
(8-word shingles; a prompt shorter than 8 words is looked for whole, as a contiguous word
sequence) and that the roles are disjoint.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from saedetox.data.location import data_file
from saedetox.data.readers import Pair, Prompt, detokenise, read_paradetox_pairs, read_rtp
from saedetox.errors import SaedetoxError

LM_SHARE = 0.3
DISCOVERY_END = 0.8  # the bucket the committed LM was trained on ([0, LM_SHARE)) must never move
SELECT_END = 0.9
HELDOUT_SHARE = 0.02
PARADETOX_ROLES = ("lm", "discovery", "discovery_select", "discovery_test")


def stable_unit(key: str, salt: str = "saedetox") -> float:
    """A number in [0, 1) determined by ``key`` alone (SHA-1 based)."""
    digest = hashlib.sha1(f"{salt}\x00{key}".encode()).hexdigest()
    return int(digest[:12], 16) / float(1 << 48)


def paradetox_role(toxic_text: str) -> str:
    """Role of one ParaDetox pair, keyed by its toxic side."""
    u = stable_unit(normalise_key(toxic_text), "paradetox")
    if u < LM_SHARE:
        return "lm"
    if u < DISCOVERY_END:
        return "discovery"
    if u < SELECT_END:
        return "discovery_select"
    return "discovery_test"


def lm_chunk_is_heldout(chunk: str) -> bool:
    """Whether an ``lm_corpus`` chunk is held out for clean-text perplexity."""
    return stable_unit(normalise_key(chunk), "lm-heldout") < HELDOUT_SHARE


_WS = re.compile(r"\s+")


def normalise_key(text: str) -> str:
    """Key used for hashing and overlap checks: lower case, single spaces."""
    return _WS.sub(" ", text.strip().lower())


_WORD = re.compile(r"[a-z0-9']+")
SHINGLE_WORDS = 8


@dataclass
class Overlap:
    """Which prompts a set of texts shares words with (see :func:`prompt_overlap`)."""

    shared: set[str] = field(default_factory=set)  # share at least one shingle, or (short prompts) appear whole
    whole: set[str] = field(default_factory=set)  # appear whole: every shingle found, or the whole short prompt


_MULT = np.random.default_rng(0).integers(1, 2**63, size=64, dtype=np.uint64) | np.uint64(1)


def _ngram_hashes(ids: np.ndarray, n: int) -> np.ndarray:
    """64-bit hash of every ``n``-word window of ``ids``; windows holding an unknown word (0) get 0."""
    if len(ids) < n:
        return np.zeros(0, dtype=np.uint64)
    mult = _MULT[:n]
    m = len(ids) - n + 1
    h = np.zeros(m, dtype=np.uint64)
    known = np.ones(m, dtype=bool)
    with np.errstate(over="ignore"):
        for j in range(n):
            part = ids[j : j + m]
            h = h * np.uint64(1_000_003) + part * mult[j]
            known &= part > 0
    h[~known] = 0
    return h


def _matches(sorted_keys: np.ndarray, hashes: np.ndarray) -> np.ndarray:
    """The keys (sorted, unique) that occur in ``hashes``."""
    pos = np.searchsorted(sorted_keys, hashes).clip(max=len(sorted_keys) - 1)
    return np.unique(hashes[sorted_keys[pos] == hashes])


def prompt_overlap(prompts: Sequence[str], texts: Iterable[str], n: int = SHINGLE_WORDS) -> Overlap:
    """Prompts that occur in ``texts``, compared as lower-case word sequences.

    A prompt of at least ``n`` words is *shared* when one of its ``n``-word shingles occurs in a
    text and *whole* when all of them do; a shorter prompt has no shingle, so it is looked for
    whole, as a contiguous word sequence inside one text (both *shared* and *whole* when found).
    Word windows are compared by 64-bit hashes (vectorised; a false match is about as likely as
    a 64-bit collision).
    """
    vocab: dict[str, int] = {}
    words = {p: [vocab.setdefault(x, len(vocab) + 1) for x in _WORD.findall(p.lower())] for p in prompts}
    # every text's word ids, unknown words as 0 and a 0 between texts, so no window crosses a text
    chunks = [np.asarray([vocab.get(x, 0) for x in _WORD.findall(t.lower())] + [0], dtype=np.uint64) for t in texts]
    ids = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.uint64)
    mine = {p: _ngram_hashes(np.asarray(w, dtype=np.uint64), min(len(w), n)) for p, w in words.items() if w}
    found: dict[str, np.ndarray] = {}
    for k in {min(len(w), n) for w in words.values() if w}:
        group = [p for p in mine if min(len(words[p]), n) == k]
        want = np.concatenate([mine[p] for p in group])
        hit = np.isin(want, _matches(np.unique(want), _ngram_hashes(ids, k)))
        cuts = np.cumsum([len(mine[p]) for p in group])[:-1]
        found.update(zip(group, np.split(hit, cuts), strict=True))
    out = Overlap()
    out.shared = {p for p, h in found.items() if h.any()}
    out.whole = {p for p, h in found.items() if h.all()}
    return out


def paradetox_by_role(data_dir: str | os.PathLike[str] | None = None, normalise: bool = True) -> dict[str, list[Pair]]:
    """ParaDetox pairs grouped by their split role (``lm``, ``discovery``, ``discovery_select``, ``discovery_test``).

    With ``normalise``, both sides are detokenised and sentence-cased, the register the
    reference LM was trained on.
    """
    path = data_file("paradetox/paradetox.tsv", data_dir).resolve()
    st = path.stat()
    return {
        role: list(pairs) for role, pairs in _paradetox_by_role(path, st.st_mtime_ns, st.st_size, normalise).items()
    }


@functools.lru_cache(maxsize=4)
def _paradetox_by_role(path: Path, mtime_ns: int, size: int, normalise: bool) -> dict[str, tuple[Pair, ...]]:
    """Read and split once per file version (detokenising 20k pairs takes seconds); callers get fresh lists."""
    out: dict[str, list[Pair]] = {role: [] for role in PARADETOX_ROLES}
    for pair in read_paradetox_pairs(path):
        role = paradetox_role(pair.toxic)
        if normalise:
            pair = Pair(detokenise(pair.toxic, True), detokenise(pair.neutral, True))
        out[role].append(pair)
    return {role: tuple(pairs) for role, pairs in out.items()}


RTP_FILES = {"challenging": "rtp_decodingtrust/toxic.jsonl", "nontoxic": "rtp_decodingtrust/nontoxic.jsonl"}
RTP_SPLITS = ("dev", "test")
#: challenging and nontoxic prompts together (each split likewise): a set where a gate has something to decide
MIXED = "mixed"
RTP_DEV_SHARE = 0.3


def rtp_split(prompt: Prompt) -> str:
    """``dev`` or ``test``: a stable hash of the prompt's RTP id (its text when it has none)."""
    return "dev" if stable_unit(prompt.uid or normalise_key(prompt.text), "rtp-dev") < RTP_DEV_SHARE else "test"


def is_reference_prompt_set(name: str) -> bool:
    """Whether ``name`` names a packaged prompt set (``challenging``, ``nontoxic``, optionally ``:dev``/``:test``)."""
    base, _, split = name.partition(":")
    return (base in RTP_FILES or base == MIXED) and (not split or split in RTP_SPLITS)


def reference_prompts(which: str = "challenging", data_dir: str | os.PathLike[str] | None = None) -> list[Prompt]:
    """RealToxicityPrompts from the data dir: ``challenging`` (1,196), ``nontoxic`` (1,200) or ``mixed`` (both,
    in that order), all of them or only their ``:dev`` / ``:test`` split (see the module docstring)."""
    if not is_reference_prompt_set(which):
        names = ", ".join(f"{b}[:dev|:test]" for b in (*RTP_FILES, MIXED))
        raise SaedetoxError(f"Unknown prompt set '{which}': use {names} or a path to an RTP .jsonl.")
    base, _, split = which.partition(":")
    if base == MIXED:
        tail = f":{split}" if split else ""
        return [p for b in RTP_FILES for p in reference_prompts(b + tail, data_dir)]
    path = data_file(RTP_FILES[base], data_dir).resolve()
    st = path.stat()
    return list(_prompt_set(path, st.st_mtime_ns, st.st_size, split))


@functools.lru_cache(maxsize=16)
def _prompt_set(path: Path, mtime_ns: int, size: int, split: str) -> tuple[Prompt, ...]:
    """One prompt set, read once per process while its file is unchanged (a sweep asks for it every run)."""
    prompts = read_rtp(path)
    return tuple(p for p in prompts if rtp_split(p) == split) if split else tuple(prompts)
