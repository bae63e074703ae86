"""features.json: what discovery writes, and how steering reads latents and gates back from it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from saedetox.errors import SaedetoxError
from saedetox.io import atomic_write_json


def write_features(obj: dict[str, Any], path: str | Path) -> Path:
    atomic_write_json(path, obj)
    return Path(path)


def read_features(path: str | Path) -> dict[str, Any]:
    """A features.json written by :func:`write_features` (discovery's output)."""
    return json.loads(Path(path).read_text())


def feature_thresholds(value: str | None) -> list[float] | None:
    """Per-latent gate thresholds stored in a features.json (``thresholds``), if any."""
    if not value or not Path(value).is_file():
        return None
    try:
        data = json.loads(Path(value).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    th = data.get("thresholds") if isinstance(data, dict) else None
    if not isinstance(th, list):
        return None
    if any(isinstance(t, bool) or not isinstance(t, (int, float)) for t in th):
        raise SaedetoxError(f"{value} has a non-numeric gate threshold; thresholds are numbers.")
    return [float(t) for t in th]


def feature_detector(value: str | None) -> dict[str, Any] | None:
    """The set detector stored in a features.json (``detector``, see :mod:`saedetox.discover.detector`), if any."""
    if not value or not Path(value).is_file():
        return None
    try:
        data = json.loads(Path(value).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise SaedetoxError(f"{value} is not valid JSON.") from None
    det = data.get("detector") if isinstance(data, dict) else None
    if det is None:
        return None
    n = len(det.get("latents") or []) if isinstance(det, dict) else -1
    if n < 1 or not all(isinstance(det.get(k), list) and len(det[k]) == n for k in ("coef", "scale")):
        raise SaedetoxError(f"{value} has a malformed detector: it needs equally long 'latents', 'coef' and 'scale'.")
    return det


def parse_features(value: str) -> list[int]:
    """``--features``: ``3,17,42`` or a ``features.json`` path (its selected latents)."""
    value = value.strip()
    if not value:
        raise SaedetoxError("--features is empty: give indices like 3,17 or a features.json file.")
    path = Path(value)
    if path.suffix == ".json" or path.exists():
        if not path.exists():
            raise SaedetoxError(f"Features file {path} not found.")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError, OSError):
            raise SaedetoxError(f"{path} is not a readable JSON file.") from None
        ids = data.get("selected") if isinstance(data, dict) else data
        if not isinstance(ids, list):
            raise SaedetoxError(f"{path} has no 'selected' list of latent indices.")
        bad = [i for i in ids if isinstance(i, bool) or not isinstance(i, int) or i < 0]
        if bad:
            raise SaedetoxError(f"{path} lists {bad[0]!r} as a latent; latent indices are whole numbers ≥ 0.")
        return list(ids)
    try:
        ids = [int(tok) for tok in value.replace(" ", "").split(",") if tok]
    except ValueError:
        raise SaedetoxError(
            f"--features must be comma-separated integers or a features.json path, got '{value}'."
        ) from None
    if any(i < 0 for i in ids):
        raise SaedetoxError(f"Latent indices are whole numbers ≥ 0, got '{value}'.")
    return ids
