"""Reading metrics files: per-run or sweep ``metrics.json`` into one run name → metrics mapping."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from saedetox.errors import SaedetoxError
from saedetox.report.format import config_value


def _is_run(obj: Any) -> bool:
    return isinstance(obj, dict) and isinstance(obj.get("toxicity"), dict)


def load_runs(paths: Sequence[str | os.PathLike[str]]) -> dict[str, dict[str, Any]]:
    """Read per-run or sweep ``metrics.json`` files (a directory means its ``metrics.json``) into one dict.

    A per-run file has a ``toxicity`` object; it is named by ``config.run`` or its parent folder. A
    sweep file maps run names to such objects (other entries are skipped). A name seen twice is
    prefixed by its file's folder.
    """
    out: dict[str, dict[str, Any]] = {}
    for p in map(Path, paths):
        p = p / "metrics.json" if p.is_dir() else p
        try:
            obj = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SaedetoxError(
                f"Metrics file {p} not found; pass RUN/metrics.json or a sweep's metrics.json."
            ) from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise SaedetoxError(f"Cannot read metrics file {p}: {e}; is it a metrics.json from saedetox?") from None
        if _is_run(obj):
            found = {str(config_value(obj, "run") or p.resolve().parent.name): obj}
        elif isinstance(obj, dict):
            found = {str(k): v for k, v in obj.items() if _is_run(v)}
        else:
            found = {}
        if not found:
            raise SaedetoxError(f"{p} holds no run metrics (no 'toxicity' object); pass a metrics.json from saedetox.")
        for name, m in found.items():
            key, i = name, 1
            while key in out:
                key = f"{p.resolve().parent.name}/{name}" + (f"#{i}" if i > 1 else "")
                i += 1
            out[key] = m
    return out
