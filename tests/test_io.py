"""Outputs: atomic writes and the one-writer-per-folder lock."""

from __future__ import annotations

import multiprocessing as mp
import time

import pytest

from saedetox.errors import SaedetoxError
from saedetox.io import atomic_write_json, folder_lock, lock_path


def _hold(folder: str, ready, release) -> None:
    with folder_lock(folder):
        ready.set()
        release.wait(20)


def test_second_process_is_refused_at_once(tmp_path):
    folder = tmp_path / "run"
    ctx = mp.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold, args=(str(folder), ready, release))
    proc.start()
    try:
        assert ready.wait(60)
        t0 = time.time()
        with pytest.raises(SaedetoxError, match="in use by another saedetox process"):
            with folder_lock(folder):
                pass
        assert time.time() - t0 < 5  # refused at once, not after waiting
    finally:
        release.set()
        proc.join(30)
    with folder_lock(folder):  # free again once the holder is gone
        pass


def test_lock_is_beside_the_folder_and_creates_nothing_inside(tmp_path):
    folder = tmp_path / "out" / "run"
    with folder_lock(folder, "evaluate"):
        assert lock_path(folder).parent == folder.parent
        assert not folder.exists()  # taking the lock leaves no empty run folder behind


def test_same_process_cannot_take_it_twice(tmp_path):
    with folder_lock(tmp_path / "run"):
        with pytest.raises(SaedetoxError, match=r"\(export\)"):
            with folder_lock(tmp_path / "run", "export"):
                pass


def test_atomic_write_leaves_no_temp_files(tmp_path):
    atomic_write_json(tmp_path / "m.json", {"a": 1})
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]
