"""Outputs: every file appears whole or not at all (atomic writes), and one writer per output folder."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from saedetox.errors import SaedetoxError


def _tmp_beside(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(name, 0o666 & ~umask)  # mkstemp makes 0600; outputs are ordinary files
    return Path(name)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    path = Path(path)
    tmp = _tmp_beside(path)
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    path = Path(path)
    tmp = _tmp_beside(path)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_save_torch(obj: Any, path: str | os.PathLike[str]) -> None:
    import torch  # deferred: io is imported by light paths (report); only checkpoints need torch

    path = Path(path)
    tmp = _tmp_beside(path)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def lock_path(folder: str | os.PathLike[str]) -> Path:
    """Where :func:`folder_lock` keeps its lock file: beside ``folder`` (``.NAME.lock``), never inside it."""
    folder = Path(folder).resolve()
    return folder.parent / f".{folder.name}.lock"


@contextmanager
def folder_lock(folder: str | os.PathLike[str], what: str = "run") -> Iterator[None]:
    """Hold an exclusive lock on an output folder for the duration of the block.

    A second process (or a second lock in this one) that asks for the same folder fails at once with
    one clear line instead of waiting or writing alongside. The lock file sits beside the folder, so
    taking the lock never creates the folder itself; the OS releases it if the process dies.
    """
    path = lock_path(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path), timeout=0, thread_local=False)
    try:
        lock.acquire()
    except Timeout:
        raise SaedetoxError(
            f"{folder} is in use by another saedetox process ({what}); wait for it to finish or use another folder."
        ) from None
    try:
        yield
    finally:
        lock.release()


def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _check_writable(folder: Path, target: Path) -> None:
    """Create and remove a temporary file in ``folder`` (the only test that holds for root, ACLs and
    read-only mounts alike)."""
    try:
        fd, name = tempfile.mkstemp(prefix=".saedetox-write-test.", dir=folder)
        os.close(fd)
        os.unlink(name)
    except OSError as err:
        raise SaedetoxError(
            f"Cannot write {target}: {folder} is not writable ({err.strerror or type(err).__name__})."
        ) from None


def check_output_dir(folder: str | os.PathLike[str]) -> None:
    """Refuse at once an output folder that cannot be created or written: a file in its place or on its
    path, or a read-only location. Creates nothing."""
    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        raise SaedetoxError(f"{folder} is a file, not a folder; choose another output folder.")
    base = _nearest_existing(folder.absolute())
    if not base.is_dir():
        raise SaedetoxError(f"Cannot create {folder}: {base} is a file, not a folder.")
    _check_writable(base, folder)


def check_output_file(path: str | os.PathLike[str]) -> None:
    """Refuse at once an output file that cannot be written: a folder in its place, a file on its path,
    or a read-only location. Creates nothing."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise SaedetoxError(f"{path} is a folder, not a file; choose another output file.")
    base = _nearest_existing(path.absolute().parent)
    if not base.is_dir():
        raise SaedetoxError(f"Cannot create {path}: {base} is a file, not a folder.")
    _check_writable(base, path)  # outputs are replaced atomically, so the folder's permission is what counts


def ensure_unlocked(folder: str | os.PathLike[str], what: str = "run") -> None:
    """Refuse at once (before slow work such as loading a model) a folder another process holds.

    Creates nothing: a folder without a lock file has never been locked. The real guarantee is
    :func:`folder_lock`, taken when writing starts; this only makes the refusal come sooner.
    """
    path = lock_path(folder)
    if path.exists():
        with folder_lock(folder, what):
            pass
