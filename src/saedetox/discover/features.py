"""features.json: what discovery writes (:class:`Features`), and how steering reads latents and gates back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from saedetox.errors import SaedetoxError
from saedetox.io import atomic_write_json, exists, is_file
from saedetox.sae.loaded import LoadedSAE


class Features(dict[str, Any]):
    """What :func:`saedetox.discover` found: the features.json object, with typed access.

    It is the features.json mapping itself (``feats["selected"]``, ``json.dump(feats)`` work), plus
    ``latents`` (the selected indices), ``thresholds`` (per-latent gates), ``detector``, ``table``
    (one flat row per selected latent) and :meth:`save` / :meth:`load`. ``sae`` is the SAE object
    discovery ran on when it is still in memory, so steering reuses it instead of loading it again.
    Keys: ``docs/python-api.md``.
    """

    def __init__(self, data: dict[str, Any] | None = None, sae: LoadedSAE | None = None) -> None:
        super().__init__(data or {})
        self.sae = sae

    @property
    def latents(self) -> list[int]:
        """The selected latent indices, best first."""
        return [int(i) for i in self.get("selected") or []]

    @property
    def sae_name(self) -> str | None:
        """The SAE's name as discovery recorded it (``reference``, a folder, ``release/sae_id``)."""
        return self.get("sae")

    @property
    def hook(self) -> str | None:
        return self.get("hook")

    @property
    def thresholds(self) -> list[float] | None:
        """Per-latent gate thresholds for conditional steering (clean-text quantile), if recorded."""
        th = self.get("thresholds")
        return [float(t) for t in th] if isinstance(th, list) else None

    @property
    def detector(self) -> dict[str, Any] | None:
        """The logistic detector over the selected latents (adaptive steering), if fitted."""
        det = self.get("detector")
        return dict(det) if isinstance(det, dict) else None

    @property
    def set_test_auroc(self) -> float | None:
        """AUROC of the detector on the test split (which chose nothing)."""
        return self.get("set_test_auroc")

    @property
    def table(self) -> list[dict[str, Any]]:
        """One flat row per selected latent (``pandas.DataFrame(feats.table)`` makes a table of it)."""
        rows = []
        for f in self.get("features") or []:
            top = f.get("top_tokens") or []
            rows.append(
                {
                    "index": f.get("index"),
                    "score": (f.get("scores") or {}).get(self.get("method", "")),
                    "select_auroc": f.get("select_auroc"),
                    "test_auroc": f.get("test_auroc"),
                    "top_token": top[0]["token"] if top else None,
                    "top_context": top[0]["context"] if top else None,
                    "neuronpedia": f.get("neuronpedia"),
                }
            )
        return rows

    def save(self, path: str | Path) -> Path:
        """Write features.json (atomically); ``saedetox ... --features PATH`` reads it."""
        return write_features(dict(self), path)

    @classmethod
    def load(cls, path: str | Path) -> Features:
        """Read a features.json written by :meth:`save` or ``saedetox discover``."""
        p = Path(path)
        if not p.is_file():
            raise SaedetoxError(f"Features file {p} not found.")
        try:
            data = read_features(p)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise SaedetoxError(f"{p} is not valid JSON.") from None
        if not isinstance(data, dict) or not isinstance(data.get("selected"), list):
            raise SaedetoxError(f"{p} is not a features.json: it has no 'selected' list of latents.")
        return cls(data)

    def __repr__(self) -> str:
        auc = self.set_test_auroc
        shown = f", set_test_auroc={auc:.3f}" if isinstance(auc, (int, float)) else ""
        return f"Features(sae={self.sae_name!r}, hook={self.hook!r}, latents={self.latents}{shown})"


def write_features(obj: dict[str, Any], path: str | Path) -> Path:
    atomic_write_json(path, obj)
    return Path(path)


def read_features(path: str | Path) -> dict[str, Any]:
    """A features.json written by :func:`write_features` (discovery's output)."""
    return json.loads(Path(path).read_text())


def feature_thresholds(value: str | None) -> list[float] | None:
    """Per-latent gate thresholds stored in a features.json (``thresholds``), if any."""
    if not is_file(value):
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
    if not is_file(value):
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
    """Latents given as text: ``3,17,42`` or a ``features.json`` path (its selected latents)."""
    value = value.strip()
    if not value:
        raise SaedetoxError("The features are empty: give indices like 3,17 or a features.json file.")
    path = Path(value)
    if path.suffix == ".json" or exists(path):
        if not exists(path):
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
        raise SaedetoxError(f"Features are comma-separated integers or a features.json path, got '{value}'.") from None
    if any(i < 0 for i in ids):
        raise SaedetoxError(f"Latent indices are whole numbers ≥ 0, got '{value}'.")
    return ids
