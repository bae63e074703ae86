"""Where datasets live: ``--data-dir``, ``$SAEDETOX_DATA``, ``../shared/data``, user cache."""

from __future__ import annotations

import os
from pathlib import Path

from saedetox.errors import SaedetoxError

PROJECT_ROOT = Path(__file__).resolve().parents[3]
ENV_VAR = "SAEDETOX_DATA"


def user_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "saedetox" / "data"


def candidate_dirs(explicit: str | os.PathLike[str] | None = None) -> list[Path]:
    out: list[Path] = []
    if explicit:
        out.append(Path(explicit))
    if os.environ.get(ENV_VAR):
        out.append(Path(os.environ[ENV_VAR]))
    out.append(PROJECT_ROOT.parent / "shared" / "data")
    out.append(Path.cwd().parent / "shared" / "data")
    out.append(user_cache_dir())
    return out


def resolve_data_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Return the first existing data directory, or raise one clear error."""
    if explicit is not None and not Path(explicit).is_dir():
        raise SaedetoxError(f"data_dir {explicit} is not a directory.")
    env = os.environ.get(ENV_VAR)
    if explicit is None and env and not Path(env).is_dir():
        raise SaedetoxError(f"${ENV_VAR} is {env}, which is not a directory.")
    for cand in candidate_dirs(explicit):
        if cand.is_dir() and any(cand.iterdir()):
            return cand.resolve()
    raise SaedetoxError(
        "No dataset directory found: pass data_dir (a folder) or set $SAEDETOX_DATA to a folder in "
        f"the shared/data layout (docs/concepts.md, data roles), or place one at {user_cache_dir()}."
    )


def data_file(rel: str, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Path of one dataset file inside the data directory, checked to exist."""
    root = resolve_data_dir(data_dir)
    path = root / rel
    if not path.exists():
        raise SaedetoxError(
            f"Dataset file {rel} is missing from {root}: point data_dir at a complete copy in the shared/data layout."
        )
    return path
