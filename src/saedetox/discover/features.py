"""features.json: what discovery writes (:class:`Features`), and how steering reads latents and gates back."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from saedetox.errors import SaedetoxError
from saedetox.io import atomic_write_json
from saedetox.sae.load import registry_neuronpedia_id, sae_names
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
    path = features_file(value)
    if path is None or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
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
    path = features_file(value)
    if path is None or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise SaedetoxError(f"{value} is not valid JSON.") from None
    det = data.get("detector") if isinstance(data, dict) else None
    if det is None:
        return None
    n = len(det.get("latents") or []) if isinstance(det, dict) else -1
    if n < 1 or not all(isinstance(det.get(k), list) and len(det[k]) == n for k in ("coef", "scale")):
        raise SaedetoxError(f"{value} has a malformed detector: it needs equally long 'latents', 'coef' and 'scale'.")
    return det


NEURONPEDIA_URL = re.compile(r"https?://(?:www\.)?neuronpedia\.org/([^/?#\s]+/[^/?#\s]+)/(\d+)/?(?:[?#]\S*)?", re.I)
NEURONPEDIA_ID = re.compile(r"([^/:\s]+/[^/:\s]+)/(\d+)")  # model/sae-set/index
SAELENS_ID = re.compile(r"([^/:\s]+/[^:\s]+):(\d+)")  # release/sae_id:index
ID_FORMS = (
    "comma-separated indices (3,17), Neuronpedia ids or URLs (gpt2-small/6-res-jb/1234), SAE-Lens release/sae_id:index "
    "(gpt2-small-res-jb/blocks.6.hook_resid_pre:1234) or a features.json file"
)


def features_file(value: str | Path | None) -> Path | None:
    """``value`` as a features.json path when it names one: an existing file, or a ``.json`` name without commas.

    A list of latents is never taken for a file name, however long (no file-system error either).
    """
    text = str(value or "").strip()
    if not text:
        return None
    path = Path(text).expanduser()
    try:
        if path.is_file():
            return path
    except (OSError, ValueError):  # a name too long for the file system: a list, not a file
        return None
    return path if path.suffix == ".json" and "," not in text else None


def _latent(item: str, sae: LoadedSAE | str | None) -> int:
    """One latent written as an index, a Neuronpedia id or URL, or ``release/sae_id:index``, checked against ``sae``."""
    if item.isdigit():
        return int(item)
    for kind, pattern in (("Neuronpedia", NEURONPEDIA_URL), ("Neuronpedia", NEURONPEDIA_ID), ("SAE-Lens", SAELENS_ID)):
        m = pattern.fullmatch(item)
        if m:
            _check_same_sae(item, kind, m.group(1), sae)
            return int(m.group(2))
    if item.lstrip("-").isdigit():
        raise SaedetoxError(f"Latent indices are whole numbers ≥ 0, got '{item}'.")
    raise SaedetoxError(f"'{item}' is not a latent: give {ID_FORMS}.")


def _check_same_sae(item: str, kind: str, named: str, sae: LoadedSAE | str | None) -> None:
    """Refuse a feature id of another SAE than the one steered (by name or Neuronpedia id, offline)."""
    if sae is None:
        raise SaedetoxError(f"'{item}' names an SAE's latent: say which SAE is steered as well.")
    source, np_id = sae_names(sae)
    if kind == "Neuronpedia":
        same = np_id is not None and named.lower() == np_id.lower()
    else:
        same = named == source or (np_id is not None and registry_neuronpedia_id(named) == np_id)
    if not same:
        known = f" (Neuronpedia {np_id})" if np_id else " (no Neuronpedia id)"
        raise SaedetoxError(
            f"'{item}' is a latent of the {kind} SAE {named}, but the SAE steered is {source}{known}: "
            "give latents of that SAE, or steer the SAE the id names."
        )


def parse_features(value: str, sae: LoadedSAE | str | None = None) -> list[int]:
    """Latents given as text: ``3,17,42``, Neuronpedia ids or URLs, ``release/sae_id:index``, or a features.json path.

    Several may be mixed, comma-separated. An id that names an SAE is checked against ``sae`` (the
    steered SAE, loaded or by name) offline, and refused in one line when it names another.
    """
    value = value.strip()
    if not value:
        raise SaedetoxError("The features are empty: give indices like 3,17 or a features.json file.")
    path = features_file(value)
    if path is not None:
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
    items = [tok for tok in re.split(r"[,\s]+", value) if tok]
    if not items:
        raise SaedetoxError(f"No latent in '{value}': give {ID_FORMS}.")
    return [_latent(tok, sae) for tok in items]
