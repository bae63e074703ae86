"""Outputs: every file appears whole or not at all (atomic writes), one writer per output folder, a full disk
named as such; and path checks that never raise on text that cannot be a path."""

from __future__ import annotations

import errno
import json
import os
import pickle
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from saedetox.errors import SaedetoxError


def exists(value: str | os.PathLike[str]) -> bool:
    """``Path(value).exists()`` that answers False instead of raising for text that cannot be a path."""
    try:
        return Path(value).exists()
    except (OSError, ValueError):
        return False


def _tmp_beside(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(name, 0o666 & ~umask)  # mkstemp makes 0600; outputs are ordinary files
    return Path(name)


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def no_space_error(err: OSError, path: str | os.PathLike[str], needed: int | None = None) -> SaedetoxError | None:
    """For a full disk (``ENOSPC``): one line naming ``path``, the free space there and what was needed; else None."""
    if err.errno not in (errno.ENOSPC, errno.EDQUOT):
        return None
    try:
        free = _size(shutil.disk_usage(_nearest_existing(Path(path).absolute())).free)
    except OSError:
        free = "unknown"
    need = f", about {_size(needed)} needed" if needed else ""
    return SaedetoxError(f"No space left to write {path}: {free} free there{need}; free some space or write elsewhere.")


@contextmanager
def full_disk_named(path: str | os.PathLike[str], needed: int | None = None) -> Iterator[None]:
    """Inside the block, a full disk while writing ``path`` is :func:`no_space_error`'s one line; other errors pass."""
    try:
        yield
    except OSError as err:
        full = no_space_error(err, path, needed)
        if full is None:
            raise
        raise full from None


@contextmanager
def _writing(path: Path, needed: int | None) -> Iterator[Path]:
    """A temporary file beside ``path`` to fill; renamed onto ``path`` at the end, removed on failure."""
    with full_disk_named(path, needed):
        tmp = _tmp_beside(path)
        try:
            yield tmp
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    data = text.encode("utf-8")
    with _writing(Path(path), len(data)) as tmp:
        tmp.write_bytes(data)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with _writing(Path(path), len(data)) as tmp:
        tmp.write_bytes(data)


def atomic_save_torch(obj: Any, path: str | os.PathLike[str]) -> None:
    import torch  # deferred: io is imported by light paths (report); only checkpoints need torch

    with _writing(Path(path), None) as tmp:
        torch.save(obj, tmp)


def load_torch_file(path: str | os.PathLike[str], fmt: str, what: str, *, weights_only: bool = True) -> dict[str, Any]:
    """A dict written by :func:`atomic_save_torch` with ``"format": fmt``; one line (:class:`SaedetoxError`)
    when ``path`` cannot be read (``Cannot read the {what} ...``) or holds something else (``... is not a {what}``)."""
    import torch  # deferred, as in atomic_save_torch

    try:
        data = torch.load(Path(path), map_location="cpu", weights_only=weights_only)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as err:  # missing, truncated, not torch
        why = (str(err).splitlines() or [type(err).__name__])[0]
        raise SaedetoxError(f"Cannot read the {what} {path}: {why}") from None
    if not isinstance(data, dict) or data.get("format") != fmt:
        raise SaedetoxError(f"{path} is not a {what}.")
    return data


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
    taking the lock never creates the folder itself; the OS releases it if the process dies. When the
    block fails (a refusal, an error), a lock file this call created and any folders made for it are removed again
    before the lock is released, so bad input leaves nothing behind (a process that opened the file
    meanwhile sees its inode unlinked and does not take the lock on it).
    """
    path = lock_path(folder)
    made = _missing_parents(path.parent)
    fresh = not path.exists()
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
    except BaseException:
        if fresh:  # a lock file an earlier run left stays: this call only takes back what it made
            path.unlink(missing_ok=True)
        for p in made:  # innermost first; only the empty ones
            try:
                p.rmdir()
            except OSError:
                break
        raise
    finally:
        lock.release()


def _missing_parents(folder: Path) -> list[Path]:
    """The folders on the way to ``folder`` (itself included) that do not exist yet, innermost first."""
    out = []
    p = folder
    while not p.exists() and p != p.parent:
        out.append(p)
        p = p.parent
    return out


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
