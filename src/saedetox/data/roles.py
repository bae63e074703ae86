"""Deterministic, documented data splits of the reference world.

Every text belongs to exactly one role, decided by its source and, where a source is shared
between roles, by a stable hash of its text (so the split never depends on file order,
Python's hash seed or the machine):

| role | what | used by |
| --- | --- | --- |
| ``lm`` | ``lm_corpus/`` (minus held-out chunks), ParaDetox "cannot rewrite" comments, Jigsaw ``dev_*`` sentences, ParaDetox pairs in hash bucket [0, 0.3) | ``train-lm`` (and SAE training activations) |
| ``lm_heldout`` | 2% of ``lm_corpus/`` chunks by hash | held-out clean-text perplexity |
| ``discovery`` | ParaDetox pairs in [0.3, 0.8) | ranking SAE latents (``discover``) |
| ``discovery_heldout`` | ParaDetox pairs in [0.8, 1.0) | held-out AUROC of selected latents |
| ``judge_train`` | Jigsaw ``test_10k_*`` sentences | ``train-judge`` |
| ``judge_test`` | Davidson tweets, ToxiGen sentences | judge ROC-AUC on the card |
| ``eval`` | RealToxicityPrompts (DecodingTrust challenging / non-toxic) | ``evaluate`` prompts |

The evaluation prompts are further split by a stable hash of their RTP id into ``dev`` (30%) and
``test`` (70%): ``challenging:dev`` is for developing and tuning methods, ``challenging:test`` for
reporting results on prompts that no tuning has seen (``challenging`` alone = all 1,196).

No evaluation prompt appears in any other role: ``tests/data/test_roles.py`` checks every
RealToxicityPrompts prompt against all LM, discovery and judge texts (8-word shingles) and
that the roles are disjoint.
"""

from __future__ import annotations

import hashlib
import os
import re

from saedetox.data.location import data_file
from saedetox.data.readers import Pair, Prompt, detokenise, read_paradetox_pairs, read_rtp
from saedetox.errors import SaedetoxError

LM_SHARE = 0.3
DISCOVERY_END = 0.8
HELDOUT_SHARE = 0.02


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
    return "discovery_heldout"


def lm_chunk_is_heldout(chunk: str) -> bool:
    """Whether an ``lm_corpus`` chunk is held out for clean-text perplexity."""
    return stable_unit(normalise_key(chunk), "lm-heldout") < HELDOUT_SHARE


_WS = re.compile(r"\s+")


def normalise_key(text: str) -> str:
    """Key used for hashing and overlap checks: lower case, single spaces."""
    return _WS.sub(" ", text.strip().lower())


def paradetox_by_role(data_dir: str | os.PathLike[str] | None = None, normalise: bool = True) -> dict[str, list[Pair]]:
    """ParaDetox pairs grouped by their split role (``lm``, ``discovery``, ``discovery_heldout``).

    With ``normalise``, both sides are detokenised and sentence-cased, the register the
    reference LM was trained on.
    """
    out: dict[str, list[Pair]] = {"lm": [], "discovery": [], "discovery_heldout": []}
    for pair in read_paradetox_pairs(data_file("paradetox/paradetox.tsv", data_dir)):
        role = paradetox_role(pair.toxic)
        if normalise:
            pair = Pair(detokenise(pair.toxic, True), detokenise(pair.neutral, True))
        out[role].append(pair)
    return out


RTP_FILES = {"challenging": "rtp_decodingtrust/toxic.jsonl", "nontoxic": "rtp_decodingtrust/nontoxic.jsonl"}
RTP_SPLITS = ("dev", "test")
RTP_DEV_SHARE = 0.3


def rtp_split(prompt: Prompt) -> str:
    """``dev`` or ``test``: a stable hash of the prompt's RTP id (its text when it has none)."""
    return "dev" if stable_unit(prompt.uid or normalise_key(prompt.text), "rtp-dev") < RTP_DEV_SHARE else "test"


def is_reference_prompt_set(name: str) -> bool:
    """Whether ``name`` names a packaged prompt set (``challenging``, ``nontoxic``, optionally ``:dev``/``:test``)."""
    base, _, split = name.partition(":")
    return base in RTP_FILES and (not split or split in RTP_SPLITS)


def reference_prompts(which: str = "challenging", data_dir: str | os.PathLike[str] | None = None) -> list[Prompt]:
    """RealToxicityPrompts from the data dir: ``challenging`` (1,196) or ``nontoxic`` (1,200), all of them
    or only their ``:dev`` / ``:test`` split (see the module docstring)."""
    if not is_reference_prompt_set(which):
        names = ", ".join(f"{b}[:dev|:test]" for b in RTP_FILES)
        raise SaedetoxError(f"Unknown prompt set '{which}': use {names} or a path to an RTP .jsonl.")
    base, _, split = which.partition(":")
    prompts = read_rtp(data_file(RTP_FILES[base], data_dir))
    return [p for p in prompts if rtp_split(p) == split] if split else prompts
