"""The texts discovery uses, in three disjoint splits: the reference world's, or the user's files.

| split | used for |
| --- | --- |
| ``rank`` | the ranking scores, the gate thresholds and the set detector's fit |
| ``select`` | the per-latent minimum-AUROC filter (chooses latents, so its AUROCs are optimistic) |
| ``test`` | every reported AUROC: never used to choose or fit anything |

Reference world: ParaDetox roles ``discovery`` / ``discovery_select`` / ``discovery_test``
(:mod:`saedetox.data.roles`). User data: a pairs TSV, or toxic and clean files, split 60/20/20
into rank/select/test by a stable hash of each text (a pair by its toxic side); with explicit
held-out files, the toxic/clean files are all ``rank`` and each held-out file is split 50/50
into select/test by the same hash. A text repeated across splits (e.g. a stock neutral
paraphrase such as "Go away" in two ParaDetox pairs) is dropped from the later split (its pair
with it), so no select or test text was ranked on and no test text was selected on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from saedetox.data.readers import read_paradetox_pairs, read_texts
from saedetox.data.roles import paradetox_by_role, stable_unit
from saedetox.errors import SaedetoxError

T = TypeVar("T")
SPLITS = ("rank", "select", "test")
USER_SALT = "discovery-user"
TEST_SHARE = 0.2
SELECT_SHARE = 0.2


@dataclass
class DiscoverySets:
    """Toxic and clean texts of the three splits (``toxic``/``clean`` are the rank split)."""

    toxic: list[str]
    clean: list[str]
    select_toxic: list[str]
    select_clean: list[str]
    test_toxic: list[str]
    test_clean: list[str]
    paired: bool = False  # toxic[i] and clean[i] are a pair (ParaDetox)
    description: dict[str, Any] = field(default_factory=dict)

    def split(self, name: str) -> tuple[list[str], list[str]]:
        """(toxic, clean) texts of split ``rank``, ``select`` or ``test``."""
        if name == "rank":
            return self.toxic, self.clean
        if name == "select":
            return self.select_toxic, self.select_clean
        if name == "test":
            return self.test_toxic, self.test_clean
        raise SaedetoxError(f"Unknown discovery split '{name}': use {', '.join(SPLITS)}.")

    def sizes(self) -> dict[str, dict[str, int]]:
        return {s: {"toxic": len(self.split(s)[0]), "clean": len(self.split(s)[1])} for s in SPLITS}

    def mapped(self, fn: Callable[[list[str]], list[str]]) -> DiscoverySets:
        """A copy with ``fn`` applied to each split's toxic and clean texts (e.g. chat rendering)."""
        texts = ("toxic", "clean", "select_toxic", "select_clean", "test_toxic", "test_clean")
        return dataclasses.replace(self, **{name: fn(list(getattr(self, name))) for name in texts})

    def capped(self, max_pairs: int | None) -> DiscoverySets:
        """A copy with at most ``max_pairs`` rank texts per side and ``max_pairs // 2`` select/test texts."""
        if max_pairs is None:
            return self
        if max_pairs < 2:
            raise SaedetoxError("max_pairs must be at least 2.")
        n, h = max_pairs, max_pairs // 2
        return dataclasses.replace(
            self,
            toxic=self.toxic[:n],
            clean=self.clean[:n],
            select_toxic=self.select_toxic[:h],
            select_clean=self.select_clean[:h],
            test_toxic=self.test_toxic[:h],
            test_clean=self.test_clean[:h],
            description={**self.description, "max_pairs": n},
        )

    def disjoint(self) -> DiscoverySets:
        """A copy whose select and test splits hold no text of an earlier split (pairs dropped whole)."""
        seen = set(self.toxic) | set(self.clean)
        out = dataclasses.replace(self)
        dropped = 0
        for name in ("select", "test"):
            tox, cln = self.split(name)
            if self.paired:
                keep = [i for i, (t, c) in enumerate(zip(tox, cln, strict=True)) if t not in seen and c not in seen]
                new_t, new_c = [tox[i] for i in keep], [cln[i] for i in keep]
            else:
                new_t, new_c = [t for t in tox if t not in seen], [c for c in cln if c not in seen]
            dropped += len(tox) + len(cln) - len(new_t) - len(new_c)
            setattr(out, f"{name}_toxic", new_t)
            setattr(out, f"{name}_clean", new_c)
            seen |= set(tox) | set(cln)
        if dropped:
            out.description = {**self.description, "repeated_texts_dropped": dropped}
        return out

    @classmethod
    def from_texts(
        cls, toxic: Sequence[str], clean: Sequence[str], paired: bool = False, description: dict[str, Any] | None = None
    ) -> DiscoverySets:
        """Split toxic and clean texts 60/20/20 into rank/select/test by a stable hash of each text.

        With ``paired``, ``toxic[i]`` and ``clean[i]`` are a pair and stay together (keyed by the toxic side).
        """
        if paired:
            if len(toxic) != len(clean):
                raise SaedetoxError(f"Paired texts need equal counts, got {len(toxic)} toxic and {len(clean)} clean.")
            parts = split_three(list(zip(toxic, clean, strict=True)), lambda p: p[0])
            (rt, rc), (st, sc), (tt, tc) = ([[a for a, _ in s], [b for _, b in s]] for s in parts)
        else:
            rt, st, tt = split_three(list(toxic), str)
            rc, sc, tc = split_three(list(clean), str)
        desc = {"split": "rank/select/test 60/20/20 by stable hash", **(description or {})}
        return cls(rt, rc, st, sc, tt, tc, paired, desc).disjoint()


def split_three(items: list[T], key: Callable[[T], str]) -> tuple[list[T], list[T], list[T]]:
    """(rank, select, test): test where the stable hash of ``key(item)`` is < 0.2, select < 0.4, rank the rest."""
    out: tuple[list[T], list[T], list[T]] = ([], [], [])
    for x in items:
        u = stable_unit(key(x), USER_SALT)
        out[2 if u < TEST_SHARE else 1 if u < TEST_SHARE + SELECT_SHARE else 0].append(x)
    return out


def _halves(items: list[str]) -> tuple[list[str], list[str]]:
    """(select, test): an explicit held-out file split 50/50 by the same stable hash."""
    return [x for x in items if stable_unit(x, USER_SALT) >= 0.5], [x for x in items if stable_unit(x, USER_SALT) < 0.5]


def reference_sets(data_dir: str | None = None) -> DiscoverySets:
    """The reference world's ParaDetox split (roles ``discovery`` / ``discovery_select`` / ``discovery_test``)."""
    roles = paradetox_by_role(data_dir)
    rank, sel, test = roles["discovery"], roles["discovery_select"], roles["discovery_test"]
    return DiscoverySets(
        [p.toxic for p in rank],
        [p.neutral for p in rank],
        [p.toxic for p in sel],
        [p.neutral for p in sel],
        [p.toxic for p in test],
        [p.neutral for p in test],
        True,
        {
            "source": "paradetox/paradetox.tsv",
            "split": "roles discovery / discovery_select / discovery_test (saedetox.data.roles)",
        },
    ).disjoint()


def discovery_sets(
    pairs: str | None = None,
    toxic: str | None = None,
    clean: str | None = None,
    heldout_toxic: str | None = None,
    heldout_clean: str | None = None,
    field: str = "text",
    data_dir: str | None = None,
) -> DiscoverySets:
    """The texts discovery ranks, selects and tests on (see the module docstring for the splits).

    Default: the reference world's ParaDetox split. ``pairs``: a ParaDetox-style TSV. ``toxic`` +
    ``clean``: two text files; ``heldout_toxic`` + ``heldout_clean``: files never ranked on.
    """
    if pairs is None and toxic is None and clean is None:
        if heldout_toxic or heldout_clean:
            raise SaedetoxError("Held-out files need the toxic and clean files they hold out from.")
        return reference_sets(data_dir)
    if pairs is not None:
        if toxic or clean or heldout_toxic or heldout_clean:
            raise SaedetoxError("Give either a pairs file or toxic/clean files, not both.")
        got = read_paradetox_pairs(pairs)
        sets = DiscoverySets.from_texts([p.toxic for p in got], [p.neutral for p in got], True, {"source": pairs})
    elif toxic is None or clean is None:
        raise SaedetoxError("Give both a toxic and a clean text file (or a pairs file).")
    else:
        tox, cln = read_texts(toxic, field), read_texts(clean, field)
        desc = {"toxic": toxic, "clean": clean}
        if not (heldout_toxic or heldout_clean):
            sets = DiscoverySets.from_texts(tox, cln, False, desc)
        elif not (heldout_toxic and heldout_clean):
            raise SaedetoxError("Give both held-out files (toxic and clean).")
        else:
            (st, tt), (sc, tc) = _halves(read_texts(heldout_toxic, field)), _halves(read_texts(heldout_clean, field))
            desc.update(
                heldout_toxic=heldout_toxic,
                heldout_clean=heldout_clean,
                split="rank = the toxic/clean files; select/test = the held-out files 50/50 by stable hash",
            )
            sets = DiscoverySets(tox, cln, st, sc, tt, tc, False, desc).disjoint()
    check_sets(sets)
    return sets


def check_sets(sets: DiscoverySets) -> None:
    """One clear line when a split has no toxic or no clean text."""
    for name in SPLITS:
        for side, texts in zip(("toxic", "clean"), sets.split(name), strict=True):
            if not texts:
                raise SaedetoxError(
                    f"Discovery's {name} split has no {side} text; give more texts (each split takes about "
                    f"{'60' if name == 'rank' else '20'}% of them by a stable hash)."
                )
