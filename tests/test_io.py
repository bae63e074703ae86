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


def test_a_failed_block_takes_back_the_lock_file_and_the_folders_made_for_it(tmp_path):
    folder = tmp_path / "a" / "b" / "run"
    with pytest.raises(SaedetoxError, match="refused"):
        with folder_lock(folder):
            assert lock_path(folder).exists()
            raise SaedetoxError("refused")
    assert list(tmp_path.iterdir()) == []
    with folder_lock(folder):  # and the lock can be taken again at once
        pass
    assert lock_path(folder).exists()  # a finished block keeps its lock file
    with pytest.raises(SaedetoxError):
        with folder_lock(folder):
            raise SaedetoxError("refused")
    assert lock_path(folder).exists()  # one an earlier run made is not this call's to remove


def test_a_full_disk_is_named_with_the_free_space(tmp_path, monkeypatch):
    import errno
    import pathlib

    def no_space(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pathlib.Path, "write_bytes", no_space)
    with pytest.raises(SaedetoxError, match=r"No space left to write .*m\.json: .*B free there, about 13 B needed"):
        atomic_write_json(tmp_path / "m.json", {"a": 1})
    assert list(tmp_path.iterdir()) == []  # no temporary file left
    monkeypatch.setattr(pathlib.Path, "write_bytes", lambda self, data: (_ for _ in ()).throw(OSError(errno.EIO, "x")))
    with pytest.raises(OSError, match="x"):  # other write errors are not dressed up as a full disk
        atomic_write_json(tmp_path / "m.json", {"a": 1})


def test_path_checks_never_raise_on_text_that_cannot_be_a_path(tmp_path):
    from saedetox.io import exists

    long = ",".join(str(i) for i in range(1000, 1100))
    (tmp_path / "f").write_text("x")
    assert exists(tmp_path / "f") and exists(tmp_path)
    assert not exists(long) and not exists("a\0b") and not exists(tmp_path / "nope")


def test_a_torch_file_of_another_format_or_unreadable_is_one_line(tmp_path):
    from saedetox.errors import SaedetoxError
    from saedetox.io import atomic_save_torch, load_torch_file

    atomic_save_torch({"format": "a-v1", "x": 1}, tmp_path / "a.pt")
    assert load_torch_file(tmp_path / "a.pt", "a-v1", "thing") == {"format": "a-v1", "x": 1}
    with pytest.raises(SaedetoxError, match=r"a\.pt is not a thing\."):
        load_torch_file(tmp_path / "a.pt", "b-v1", "thing")
    (tmp_path / "bad.pt").write_text("not torch")
    with pytest.raises(SaedetoxError, match="Cannot read the thing"):
        load_torch_file(tmp_path / "bad.pt", "a-v1", "thing")
