"""Discovery's three splits: disjoint, stable, and the same rule for the reference world and user files."""

from __future__ import annotations

import pytest

from saedetox.discover.sets import DiscoverySets, discovery_sets, split_three
from saedetox.errors import SaedetoxError

TOX = [f"toxic text number {i}, you idiot" for i in range(200)]
CLN = [f"clean text number {i}, my friend" for i in range(200)]


def _all(sets: DiscoverySets, split: str) -> set[str]:
    return set(sets.split(split)[0]) | set(sets.split(split)[1])


def _disjoint(sets: DiscoverySets) -> None:
    r, s, t = (_all(sets, x) for x in ("rank", "select", "test"))
    assert r and s and t and not r & s and not r & t and not s & t


def test_user_files_split_60_20_20_by_stable_hash(tmp_path):
    (tmp_path / "t.txt").write_text("\n".join(TOX))
    (tmp_path / "c.txt").write_text("\n".join(CLN))
    sets = discovery_sets(toxic=str(tmp_path / "t.txt"), clean=str(tmp_path / "c.txt"))
    assert not sets.paired
    _disjoint(sets)
    n = sets.sizes()
    assert sum(n[s]["toxic"] for s in n) == len(TOX)
    assert 0.5 < n["rank"]["toxic"] / len(TOX) < 0.7 and 0.12 < n["test"]["toxic"] / len(TOX) < 0.28
    # stable: the order of the file does not matter
    (tmp_path / "t2.txt").write_text("\n".join(reversed(TOX)))
    again = discovery_sets(toxic=str(tmp_path / "t2.txt"), clean=str(tmp_path / "c.txt"))
    assert set(again.test_toxic) == set(sets.test_toxic)
    with pytest.raises(SaedetoxError, match="both"):
        discovery_sets(toxic=str(tmp_path / "t.txt"))


def test_pairs_stay_together(tmp_path):
    rows = ["toxic\tneutral1"] + [f"{t}\t{c}" for t, c in zip(TOX, CLN, strict=True)]
    (tmp_path / "p.tsv").write_text("\n".join(rows))
    sets = discovery_sets(pairs=str(tmp_path / "p.tsv"))
    assert sets.paired
    _disjoint(sets)
    for split in ("rank", "select", "test"):
        tox, cln = sets.split(split)
        assert [t.split()[3] for t in tox] == [c.split()[3] for c in cln]  # the i-th pair is still paired
    with pytest.raises(SaedetoxError, match="not both"):
        discovery_sets(pairs=str(tmp_path / "p.tsv"), toxic="x")


def test_explicit_heldout_files_become_select_and_test(tmp_path):
    for name, texts in (("t", TOX[:100]), ("c", CLN[:100]), ("ht", TOX[100:]), ("hc", CLN[100:])):
        (tmp_path / f"{name}.txt").write_text("\n".join(texts))
    f = {k: str(tmp_path / f"{k}.txt") for k in ("t", "c", "ht", "hc")}
    sets = discovery_sets(toxic=f["t"], clean=f["c"], heldout_toxic=f["ht"], heldout_clean=f["hc"])
    assert sets.toxic == TOX[:100] and sets.clean == CLN[:100]  # every ranked text comes from the rank files
    assert sorted(sets.select_toxic + sets.test_toxic) == sorted(TOX[100:])
    _disjoint(sets)
    with pytest.raises(SaedetoxError, match="both held-out"):
        discovery_sets(toxic=f["t"], clean=f["c"], heldout_toxic=f["ht"])


def test_too_few_texts_is_one_clear_error(tmp_path):
    (tmp_path / "t.txt").write_text("one toxic text\n")
    (tmp_path / "c.txt").write_text("one clean text\n")
    with pytest.raises(SaedetoxError, match="split has no"):
        discovery_sets(toxic=str(tmp_path / "t.txt"), clean=str(tmp_path / "c.txt"))


def test_reference_split_is_three_way_and_disjoint():
    sets = discovery_sets()
    assert sets.paired
    _disjoint(sets)
    n = sets.sizes()
    assert n["rank"]["toxic"] > 5000 and 1000 < n["select"]["toxic"] < 1400 and 1000 < n["test"]["toxic"] < 1400
    capped = sets.capped(3000)
    assert capped.sizes()["rank"]["toxic"] == 3000 and capped.sizes()["test"]["toxic"] == min(1500, n["test"]["toxic"])
    assert capped.test_toxic == sets.test_toxic[:1500] and sets.sizes() == n  # capping copies


def test_split_three_shares():
    items = [str(i) for i in range(5000)]
    r, s, t = split_three(items, str)
    assert len(r) + len(s) + len(t) == 5000
    assert abs(len(t) / 5000 - 0.2) < 0.03 and abs(len(s) / 5000 - 0.2) < 0.03
