"""The HF hub cache layout that ``huggingface_hub`` resolves offline: refs/main, blobs, snapshot symlinks."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

_LFS_SUFFIXES = (".safetensors", ".npz", ".bin", ".model", ".pt", ".h5", ".msgpack", ".ot")


def repo_folder_name(repo_id: str) -> str:
    return "models--" + repo_id.replace("/", "--")


def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _file_hash(path: Path, lfs: bool) -> str:
    if not lfs:
        return _git_blob_sha1(path.read_bytes())
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


class RepoWriter:
    """Stage files for one repo, then commit them into the HF cache layout."""

    def __init__(self, cache_dir: Path, repo_id: str, layout: str = "blobs"):
        if layout not in ("blobs", "plain"):
            raise ValueError("layout must be 'blobs' (symlinks to blobs, like a real download) or 'plain'")
        self.cache_dir = Path(cache_dir)
        self.repo_id = repo_id
        self.layout = layout
        self.storage = self.cache_dir / repo_folder_name(repo_id)
        self.staging = self.storage / ".staging"
        shutil.rmtree(self.staging, ignore_errors=True)
        self.staging.mkdir(parents=True)
        self.files: list[str] = []

    def path(self, relpath: str) -> Path:
        """Staging path to write ``relpath`` into (parents created)."""
        p = self.staging / relpath
        p.parent.mkdir(parents=True, exist_ok=True)
        self.files.append(relpath)
        return p

    def write_bytes(self, relpath: str, data: bytes) -> None:
        self.path(relpath).write_bytes(data)

    def write_json(self, relpath: str, obj: Any, indent: int | None = 2) -> None:
        self.write_bytes(relpath, (json.dumps(obj, indent=indent) + "\n").encode())

    def copy(self, relpath: str, src: Path) -> None:
        shutil.copyfile(src, self.path(relpath))

    def commit(self) -> Path:
        hashes = {}
        for rel in sorted(set(self.files)):
            src = self.staging / rel
            hashes[rel] = _file_hash(src, lfs=rel.endswith(_LFS_SUFFIXES) or src.stat().st_size > 10 << 20)
        commit = hashlib.sha1(
            (self.repo_id + "\n" + "\n".join(f"{k} {v}" for k, v in sorted(hashes.items()))).encode()
        ).hexdigest()
        snap = self.storage / "snapshots" / commit
        shutil.rmtree(snap, ignore_errors=True)
        blobs = self.storage / "blobs"
        blobs.mkdir(parents=True, exist_ok=True)
        for rel, etag in hashes.items():
            src = self.staging / rel
            dst = snap / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if self.layout == "plain":
                os.replace(src, dst)
                continue
            blob = blobs / etag
            if blob.exists():
                src.unlink()
            else:
                os.replace(src, blob)
                os.chmod(blob, 0o644)  # safetensors/zipfile may create 0600 files
            dst.symlink_to(os.path.relpath(blob, dst.parent))
        (self.storage / "refs").mkdir(exist_ok=True)
        (self.storage / "refs" / "main").write_text(commit)  # no trailing newline, as huggingface_hub writes it
        shutil.rmtree(self.staging, ignore_errors=True)
        return snap


# --------------------------------------------------------------------------- weights


def rng_for(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, int.from_bytes(hashlib.sha1(name.encode()).digest()[:4], "little")])
