"""The texts discovery ranks on and validates on: the reference world's split, or the user's files."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from saedetox.data.readers import read_paradetox_pairs, read_texts
from saedetox.data.roles import paradetox_by_role, stable_unit
from saedetox.errors import SaedetoxError


@dataclass
class DiscoverySets:
    toxic: list[str]
    clean: list[str]
    heldout_toxic: list[str]
    heldout_clean: list[str]
    paired: bool
    description: dict[str, Any]


def _hash_split(items: list[Any], key, share: float = 0.2) -> tuple[list[Any], list[Any]]:
    train = [x for x in items if stable_unit(key(x), "discovery-user") >= share]
    held = [x for x in items if stable_unit(key(x), "discovery-user") < share]
    return train, held


def discovery_sets(
    pairs: str | None = None,
    toxic: str | None = None,
    clean: str | None = None,
    heldout_toxic: str | None = None,
    heldout_clean: str | None = None,
    field: str = "text",
    data_dir: str | None = None,
) -> DiscoverySets:
    """The texts discovery ranks on and validates on.

    Default: the reference world's ParaDetox split (roles ``discovery`` / ``discovery_heldout``).
    ``pairs``: a ParaDetox-style TSV, split 80/20 by a stable hash. ``toxic`` + ``clean``: two
    text files, split the same way unless held-out files are given.
    """
    if pairs is None and toxic is None and clean is None:
        roles = paradetox_by_role(data_dir)
        tr, ho = roles["discovery"], roles["discovery_heldout"]
        desc = {
            "source": "paradetox/paradetox.tsv",
            "split": "roles discovery / discovery_heldout (saedetox.data.roles)",
        }
        return DiscoverySets(
            [p.toxic for p in tr], [p.neutral for p in tr], [p.toxic for p in ho], [p.neutral for p in ho], True, desc
        )
    if pairs is not None:
        if toxic or clean:
            raise SaedetoxError("Give either --pairs or --toxic/--clean, not both.")
        tr, ho = _hash_split(read_paradetox_pairs(pairs), lambda p: p.toxic)
        return DiscoverySets(
            [p.toxic for p in tr],
            [p.neutral for p in tr],
            [p.toxic for p in ho],
            [p.neutral for p in ho],
            True,
            {"source": pairs, "split": "80/20 by stable hash"},
        )
    if toxic is None or clean is None:
        raise SaedetoxError("Give both --toxic and --clean text files (or --pairs).")
    tox, cln = read_texts(toxic, field), read_texts(clean, field)
    if heldout_toxic or heldout_clean:
        if not (heldout_toxic and heldout_clean):
            raise SaedetoxError("Give both --heldout-toxic and --heldout-clean.")
        h_tox, h_cln = read_texts(heldout_toxic, field), read_texts(heldout_clean, field)
    else:
        tox, h_tox = _hash_split(tox, str)
        cln, h_cln = _hash_split(cln, str)
    desc = {"toxic": toxic, "clean": clean, "heldout_toxic": heldout_toxic, "heldout_clean": heldout_clean}
    return DiscoverySets(tox, cln, h_tox, h_cln, False, desc)
