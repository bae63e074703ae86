"""Judge scores of a run's continuations, cached in the run folder (``RUN/scores.npz``) after each judge."""

from __future__ import annotations

import functools
import io
import json
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from saedetox.eval.runs.identity import judge_identity
from saedetox.eval.runs.runfolder import SCORES
from saedetox.io import atomic_write_bytes
from saedetox.judges.base import Judge
from saedetox.judges.registry import get_judge
from saedetox.progress import note


def score_judges(
    judges: Sequence[str], conts: list[list[str]], run: Path, generation: str = ""
) -> dict[str, np.ndarray]:
    """Scores [n_prompts, k] per judge, cached in ``RUN/scores.npz`` after each judge.

    A cached score is used only for the same continuations (``generation``: the fingerprint of
    what they depend on) and the same judge (its identity: files or package version).
    """
    cache = run / SCORES
    shape = (len(conts), len(conts[0]) if conts else 0)
    have = _cached_scores(cache, shape, generation)
    flat = [c for row in conts for c in row]
    for name in judges:
        if name not in have:
            note(f"scoring {len(flat)} continuations with the {name} judge")
            scores = np.asarray(_judge(name).score(flat), dtype=np.float64).reshape(shape)
            have[name] = (judge_identity(name), scores)
            _save_scores(cache, have, generation)
    return {j: have[j][1] for j in judges}


def _cached_scores(cache: Path, shape: tuple[int, int], generation: str) -> dict[str, tuple[str, np.ndarray]]:
    if not cache.exists():
        return {}
    try:
        with np.load(cache) as z:
            meta = json.loads(str(z["__meta__"])) if "__meta__" in z.files else {}
            if meta.get("generation") != generation:
                return {}
            ids = meta.get("judges", {})
            return {
                k: (ids[k], z[k]) for k in z.files if k in ids and z[k].shape == shape and ids[k] == judge_identity(k)
            }
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError):
        return {}  # an unreadable cache is computed again


def _save_scores(cache: Path, have: dict[str, tuple[str, np.ndarray]], generation: str) -> None:
    meta = {"generation": generation, "judges": {k: v[0] for k, v in have.items()}}
    buf = io.BytesIO()
    np.savez(buf, __meta__=np.array(json.dumps(meta)), **{k: v[1] for k, v in have.items()})
    atomic_write_bytes(cache, buf.getvalue())


@functools.lru_cache(maxsize=8)
def _judge(name: str) -> Judge:
    return get_judge(name)


def check_judges(judges: Sequence[str]) -> None:
    """Every judge can be built here (known name, optional package installed, API key set), before any work."""
    for j in judges:
        _judge(j)
