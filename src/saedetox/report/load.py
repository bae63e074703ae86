"""Reading metrics files: per-run or sweep ``metrics.json`` into one run name → metrics mapping."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from saedetox.errors import SaedetoxError
from saedetox.eval.result import RunResult


def is_run(obj: Any) -> bool:
    """A per-run metrics object (it has a ``toxicity`` object)."""
    return isinstance(obj, dict) and isinstance(obj.get("toxicity"), dict)


def as_results(runs: Mapping[str, Mapping[str, Any]]) -> dict[str, RunResult]:
    """Run name → :class:`RunResult` (the runs that already are one are kept as they are)."""
    return {name: RunResult.of(m) for name, m in runs.items()}


def read_metrics(path: str | os.PathLike[str]) -> tuple[Path, dict[str, RunResult]]:
    """``(file, runs)`` of one per-run or sweep ``metrics.json`` (a directory means its ``metrics.json``).

    A per-run file has a ``toxicity`` object; it is named by ``config.run`` or its parent folder. A
    sweep file maps run names to such objects (other entries are skipped).
    """
    p = Path(path)
    p = p / "metrics.json" if p.is_dir() else p
    try:
        obj = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SaedetoxError(f"Metrics file {p} not found; pass RUN/metrics.json or a sweep's metrics.json.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SaedetoxError(f"Cannot read metrics file {p}: {e}; is it a metrics.json from saedetox?") from None
    if is_run(obj):
        run = RunResult(obj, p.parent)
        found = {str(run.config_value("run") or p.resolve().parent.name): run}
    elif isinstance(obj, dict):
        found = {str(k): RunResult(v) for k, v in obj.items() if is_run(v)}
    else:
        found = {}
    if not found:
        raise SaedetoxError(f"{p} holds no run metrics (no 'toxicity' object); pass a metrics.json from saedetox.")
    return p, found


def load_runs(paths: Sequence[str | os.PathLike[str]]) -> dict[str, RunResult]:
    """Read per-run or sweep ``metrics.json`` files (see :func:`read_metrics`) into one dict.

    A name seen twice is prefixed by its file's folder.
    """
    out: dict[str, RunResult] = {}
    for path in paths:
        p, found = read_metrics(path)
        for name, m in found.items():
            key, i = name, 1
            while key in out:
                key = f"{p.resolve().parent.name}/{name}" + (f"#{i}" if i > 1 else "")
                i += 1
            out[key] = m
    return out


def load_comparison_config(paths: Sequence[str | os.PathLike[str]]) -> dict[str, Any] | None:
    """The ``comparison`` section of the sweep config recorded beside a sweep ``metrics.json``, if any.

    A sweep writes ``manifest.json`` (with its config) next to its ``metrics.json``; the first one
    found among ``paths`` that holds a ``comparison`` mapping is returned.
    """
    for path in paths:
        p = Path(path)
        folder = p if p.is_dir() else p.parent
        manifest = folder / "manifest.json"
        if not manifest.is_file():
            continue
        try:
            cfg = json.loads(manifest.read_text(encoding="utf-8")).get("config") or {}
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            continue
        if isinstance(cfg, dict) and isinstance(cfg.get("comparison"), dict):
            return cfg["comparison"]
    return None


STUDIES = ("robustness", "secondary")


def load_studies(paths: Sequence[str | os.PathLike[str]]) -> dict[str, Any]:
    """A sweep's condition studies (``robustness.json``, ``secondary.json``) beside its ``metrics.json``.

    Only for one sweep (one path): the studies describe that sweep's runs. Unreadable files are left out.
    """
    if len(paths) != 1:
        return {}
    p = Path(paths[0])
    folder = p if p.is_dir() else p.parent
    out = {}
    for name in STUDIES:
        try:
            data = json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(data, dict):
            out[name] = data
    return out
