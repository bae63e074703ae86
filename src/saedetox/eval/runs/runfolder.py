"""A run folder's state: reuse a finished run, resume an unfinished one, refuse one made with other settings.

``RUN/config.json`` holds the run's fingerprint (:mod:`saedetox.eval.runs.fingerprint`) from the
moment the run starts, and ``RUN/metrics.json`` holds it again when the run finishes, so
metrics computed with other settings are never returned: they are reused only when their own
fingerprint equals the current one. Callers hold the folder's lock
(:func:`saedetox.io.folder_lock`) around everything here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from saedetox.errors import SaedetoxError, StaleRunError
from saedetox.eval.runs.fingerprint import Fingerprint, differences, only_judges_differ
from saedetox.io import lock_path

CONFIG, GENERATIONS, SCORES, METRICS = "config.json", "generations.jsonl", "scores.npz", "metrics.json"
RUN_FILES = (METRICS, SCORES, GENERATIONS, CONFIG)  # removal order: results first, the settings record last
REPLACE = "pass overwrite=True or use another folder"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def stored_fingerprint(run: Path) -> Fingerprint | None:
    """The fingerprint recorded in ``RUN/config.json`` (None when there is none to read)."""
    cfg = _read_json(run / CONFIG)
    return Fingerprint.from_dict(cfg.get("fingerprint")) if isinstance(cfg, dict) else None


def _ours(run: Path) -> list[str]:
    return [f for f in RUN_FILES if (run / f).exists()]


def _remove(run: Path, names: tuple[str, ...] | list[str]) -> None:
    for name in names:
        (run / name).unlink(missing_ok=True)


def remove_leftovers(run: Path) -> None:
    """Temporary files of atomic writes a killed process left behind (we hold the lock: nobody is writing)."""
    if run.is_dir():
        for tmp in run.glob(".*.tmp"):
            if tmp.is_file():
                tmp.unlink(missing_ok=True)


def _recorded(run: Path, overwrite: bool) -> Fingerprint | None:
    """The fingerprint ``run`` records; None for a new or empty folder, and (with ``overwrite``) for one
    whose record is missing or unreadable, after removing its results. Without ``overwrite`` such a
    folder is refused: nothing says how its results were made."""
    if not run.exists():
        return None
    if not run.is_dir():
        raise SaedetoxError(f"{run} is a file, not a run folder; choose another output folder.")
    ours = _ours(run)
    old = stored_fingerprint(run) if CONFIG in ours else None
    if old is None and ours:
        if not overwrite:
            if CONFIG not in ours:
                why = f"holds {', '.join(ours)} but no config.json"
            else:
                why = "has a config.json that records no settings (written by an older saedetox, or unreadable)"
            raise SaedetoxError(f"{run} {why}, so its results cannot be checked; {REPLACE}.")
        _remove(run, ours)
    return old


def precheck(run: Path, base: Fingerprint, overwrite: bool) -> None:
    """Before any model is loaded: refuse at once a folder whose run differs in a setting known without a model."""
    old = _recorded(run, overwrite) if not overwrite else None
    if old is None:
        return
    common = Fingerprint({k: old.settings.get(k) for k in base.settings}, old.labels)
    if not only_judges_differ(common, base):
        raise StaleRunError(str(run), differences(common, base))


def open_run(run: Path, fp: Fingerprint, overwrite: bool) -> dict[str, Any] | None:
    """Prepare ``run`` for a run with fingerprint ``fp``: the finished metrics to reuse, or None to (re)compute.

    Same fingerprint: reuse the metrics if they are finished, else resume. Only judges differ:
    keep the continuations and rescore. Anything else differs: :class:`StaleRunError`, unless
    ``overwrite``, which removes the results and keeps the continuations only when every
    setting they depend on is identical.
    """
    remove_leftovers(run)
    old = _recorded(run, overwrite)
    if old is None:
        return None
    if old.hash == fp.hash:
        metrics = _read_json(run / METRICS)
        if isinstance(metrics, dict) and (metrics.get("fingerprint") or {}).get("hash") == fp.hash:
            return metrics
        return None
    if not overwrite and not only_judges_differ(old, fp):
        raise StaleRunError(str(run), differences(old, fp))
    _remove(run, [METRICS] if old.generation == fp.generation else [METRICS, SCORES, GENERATIONS])
    return None


def discard_if_empty(run: Path, created: bool) -> None:
    """After an early failure (e.g. non-finite scores in the first batch): remove the run folder this
    call created when it holds nothing but its config, and its lock file, so bad input leaves nothing
    behind. (Removing a held lock file lets a process that opened it in the same microsecond lock the
    orphan; only a folder that holds no result is treated so.)"""
    if created and run.is_dir() and {p.name for p in run.iterdir()} <= {CONFIG, GENERATIONS}:
        gen = run / GENERATIONS
        if not gen.exists() or gen.stat().st_size == 0:
            shutil.rmtree(run, ignore_errors=True)
            lock_path(run).unlink(missing_ok=True)
