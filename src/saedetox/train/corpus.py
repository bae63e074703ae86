"""The reference LM's training mix: how often training sees each source of :mod:`saedetox.data.corpus`.

The recipe is data, not code paths: :data:`WEIGHTS` gives every source a repeat weight (``2.0`` =
seen twice per epoch, ``0.5`` = half of it, chosen by hash). Which files a source reads, how
they are cleaned and which chunks are held out live with the data (:mod:`saedetox.data.corpus`).
"""

from __future__ import annotations

from saedetox.data.roles import stable_unit

# source name (as in saedetox.data.corpus.SOURCES, same order) -> repeat weight per epoch
WEIGHTS: dict[str, float] = {
    "gutenberg": 1.0,
    "brown": 1.0,
    "reuters": 0.5,
    "movie_reviews": 1.0,
    "speeches": 1.0,
    "webtext": 1.0,
    "switchboard": 1.0,
    "nps_chat": 1.0,
    "ethics_reddit": 1.0,
    "paradetox_cannot_rewrite": 5.0,
    "jigsaw_dev_toxic": 5.0,
    "jigsaw_dev_normal": 2.0,
    "paradetox_lm_toxic": 5.0,
    "paradetox_lm_neutral": 2.0,
}


def weighted(docs: list[str], weight: float, name: str) -> list[str]:
    """Repeat ``docs`` ``floor(weight)`` times plus a hash-chosen fraction of one more copy."""
    whole = int(weight)
    frac = weight - whole
    out = docs * whole
    if frac > 0:
        out += [d for d in docs if stable_unit(d, f"weight-{name}") < frac]
    return out
