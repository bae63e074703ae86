"""Toxicity judges behind one batched interface: ``score(texts) -> [0, 1]``, higher = more toxic.

| name | what | needs |
| --- | --- | --- |
| ``profanity`` | alt-profanity-check (linear SVM on word n-grams) | nothing (offline) |
| ``probe`` | our TF-IDF + logistic-regression judge, see :mod:`saedetox.train.judge` | the committed folder |
| ``detoxify`` (= ``-original``), ``detoxify-unbiased`` | Detoxify, ``toxicity`` class | ``pip install detoxify`` |
| ``perspective`` | Google Perspective API, TOXICITY summary score | network + API key |

Every judge scores empty strings (never crashes on them) and batches large lists itself.
"""

from __future__ import annotations

import html
import inspect
import json
import os
import re
import time
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from saedetox.errors import SaedetoxError

OFFLINE_JUDGES = ("profanity", "probe")
PROBE_DIR = Path(__file__).resolve().parent / "assets" / "judge" / "probe"
PROBE_CONFIG, PROBE_WEIGHTS = "probe.json", "probe.npz"
PROBE_FORMAT = "saedetox-tfidf-logreg-v1"
PERSPECTIVE_URL = "https://commentanalyzer.googleapis.com/v1alpha1/comments:analyze"
PERSPECTIVE_MAX_BYTES = 3000


class Judge(Protocol):
    """A toxicity judge: one score in [0, 1] per text, same order, higher = more toxic."""

    name: str

    def score(self, texts: Sequence[str]) -> np.ndarray: ...


def _batches(texts: Sequence[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(texts), size):
        yield [str(t) for t in texts[i : i + size]]


def _finish(scores: list[float] | np.ndarray, n: int) -> np.ndarray:
    out = np.clip(np.asarray(scores, dtype=np.float64).reshape(-1), 0.0, 1.0)
    if out.shape != (n,):
        raise RuntimeError(f"judge returned {out.shape[0]} scores for {n} texts")
    return out


# --------------------------------------------------------------------------- text normalisation

_URL = re.compile(r"https?://\S+|www\.\S+")
_MENTION = re.compile(r"@\w+")
_APOSTROPHE = re.compile(r"(?<=\w)['’‘`](?=\w)")
_NUMBER = re.compile(r"\b\d+(?:[.,]\d+)*\b")
_OTHER = re.compile(r"[^a-z0-9.,?!()$\s]")
_REPEAT = re.compile(r"(\w)\1{2,}")
_PUNCT = re.compile(r"([.,?!()$])")


def normalise_text(text: str) -> str:
    """Map any text to the register of the Jigsaw training sentences (used at train and score time).

    Lower case, HTML entities and Unicode compatibility forms resolved, URLs and @handles dropped,
    apostrophes inside words removed (``don't`` → ``dont``), numbers → ``digit``, letters repeated
    3+ times cut to 2, punctuation ``.,?!()$`` split off as tokens, every other symbol a space.
    """
    t = unicodedata.normalize("NFKC", html.unescape(text)).lower()
    t = _APOSTROPHE.sub("", _MENTION.sub(" ", _URL.sub(" ", t)))
    t = _REPEAT.sub(r"\1\1", _OTHER.sub(" ", _NUMBER.sub(" digit ", t)))
    return " ".join(_PUNCT.sub(r" \1 ", t).split())


# --------------------------------------------------------------------------- offline judges


class ProfanityJudge:
    """alt-profanity-check's ``predict_prob``."""

    def __init__(self, batch_size: int = 4096, name: str = "profanity") -> None:
        from profanity_check import predict_prob

        self.name, self.batch_size, self._predict = name, batch_size, predict_prob

    def score(self, texts: Sequence[str]) -> np.ndarray:
        out = [p for batch in _batches(texts, self.batch_size) for p in self._predict(batch)]
        return _finish(out, len(texts))


class ProbeJudge:
    """The ``probe`` judge: TF-IDF blocks (word / char n-grams) → logistic regression, from JSON + npz.

    Scores equal ``sklearn`` ``predict_proba`` of the trained model (see :mod:`saedetox.train.judge`).
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, batch_size: int = 4096, name: str = "probe") -> None:
        from sklearn.feature_extraction.text import CountVectorizer

        folder = Path(path) if path is not None else PROBE_DIR
        cfg_path, w_path = folder / PROBE_CONFIG, folder / PROBE_WEIGHTS
        if not cfg_path.is_file() or not w_path.is_file():
            raise SaedetoxError(
                f"No probe judge in {folder} (needs {PROBE_CONFIG} and {PROBE_WEIGHTS}): "
                "run `saedetox train-judge --out DIR` and pass that folder, or use the profanity judge."
            )
        try:
            cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
            with np.load(w_path) as z:
                weights = {k: z[k].astype(np.float64) for k in z.files}
            if cfg.get("format") != PROBE_FORMAT:
                raise ValueError(f"format {cfg.get('format')!r}, expected {PROBE_FORMAT!r}")
            self._blocks = []
            for block in cfg["blocks"]:
                vec = CountVectorizer(
                    analyzer=block["analyzer"],
                    ngram_range=tuple(block["ngram_range"]),
                    token_pattern=block.get("token_pattern"),
                    lowercase=False,
                    vocabulary=block["terms"],
                    dtype=np.float64,
                )
                idf = weights[f"idf_{block['name']}"]
                if idf.shape != (len(block["terms"]),):
                    raise ValueError(f"idf_{block['name']} does not match its vocabulary")
                self._blocks.append((vec, idf, bool(block["sublinear_tf"])))
            self._coef, self._intercept = weights["coef"].reshape(-1), float(weights["intercept"].reshape(-1)[0])
            if self._coef.shape[0] != sum(len(b["terms"]) for b in cfg["blocks"]):
                raise ValueError("coef does not match the vocabularies")
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise SaedetoxError(
                f"Probe judge in {folder} is unreadable ({err}); retrain it with `saedetox train-judge`."
            ) from None
        self.name, self.batch_size, self.path, self.config = name, batch_size, folder, cfg

    def features(self, texts: Sequence[str]) -> Any:
        """The TF-IDF feature matrix (scipy CSR) of ``texts``, blocks side by side, each row L2-normalised."""
        from scipy import sparse
        from sklearn.preprocessing import normalize

        norm = [normalise_text(str(t)) for t in texts]
        mats = []
        for vec, idf, sublinear in self._blocks:
            x = vec.transform(norm).tocsr().astype(np.float64)
            if sublinear:
                np.log(x.data, out=x.data)
                x.data += 1.0
            x.data *= idf[x.indices]
            mats.append(normalize(x, norm="l2", copy=False))
        return sparse.hstack(mats, format="csr")

    def decision(self, texts: Sequence[str]) -> np.ndarray:
        """Log-odds of toxicity."""
        return np.asarray(self.features(texts) @ self._coef).reshape(-1) + self._intercept

    def score(self, texts: Sequence[str]) -> np.ndarray:
        from scipy.special import expit

        out = [expit(self.decision(batch)) for batch in _batches(texts, self.batch_size)]
        return _finish(np.concatenate(out) if out else [], len(texts))


# --------------------------------------------------------------------------- detoxify (optional package)


class DetoxifyJudge:
    """Detoxify's ``toxicity`` class. Offline: pass a local ``checkpoint`` and ``huggingface_config_path``.

    Both also come from ``$SAEDETOX_DETOXIFY_CHECKPOINT`` / ``$SAEDETOX_DETOXIFY_CONFIG`` when not given.
    """

    def __init__(
        self,
        model_type: str = "original",
        checkpoint: str | None = None,
        huggingface_config_path: str | None = None,
        device: str | None = None,
        batch_size: int = 32,
        name: str = "detoxify",
    ) -> None:
        try:
            from detoxify import Detoxify
        except ImportError:
            raise SaedetoxError(f"The {name} judge needs the detoxify package: pip install detoxify.") from None
        checkpoint = checkpoint or os.environ.get("SAEDETOX_DETOXIFY_CHECKPOINT") or None
        config = huggingface_config_path or os.environ.get("SAEDETOX_DETOXIFY_CONFIG") or None
        for what, p in (("checkpoint", checkpoint), ("huggingface_config_path", config)):
            if p is not None and not Path(p).exists():
                raise SaedetoxError(f"Detoxify {what} {p} does not exist.")
        if device is None:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            self._model = Detoxify(model_type, checkpoint=checkpoint, device=device, huggingface_config_path=config)
        except OSError as err:  # URLError, requests/hub connection errors and missing-file errors are all OSError
            base = "roberta-base" if model_type.startswith("unbiased") else "bert-base-uncased"
            raise SaedetoxError(
                f"Detoxify could not load its '{model_type}' checkpoint or Hugging Face base config "
                f"({type(err).__name__}; offline?): download the .ckpt elsewhere and pass checkpoint=PATH "
                f"(or $SAEDETOX_DETOXIFY_CHECKPOINT), pass huggingface_config_path=DIR holding {base}'s "
                "config and tokenizer files (or $SAEDETOX_DETOXIFY_CONFIG), and set HF_HUB_OFFLINE=1."
            ) from None
        self.name, self.batch_size = name, batch_size

    def score(self, texts: Sequence[str]) -> np.ndarray:
        out: list[float] = []
        for batch in _batches(texts, self.batch_size):
            out.extend(float(v) for v in np.asarray(self._model.predict(batch)["toxicity"]).reshape(-1))
        return _finish(out, len(texts))


# --------------------------------------------------------------------------- Perspective API (network)


def truncate_utf8(text: str, max_bytes: int = PERSPECTIVE_MAX_BYTES) -> str:
    """``text`` cut to at most ``max_bytes`` UTF-8 bytes, never inside a character."""
    return text.encode("utf-8")[:max_bytes].decode("utf-8", "ignore")


class PerspectiveJudge:
    """Perspective API TOXICITY summary score; rate-limited to ``qps``, retrying 429/5xx with backoff.

    Blank texts score 0.0 without a request (the API rejects empty comments).
    """

    def __init__(
        self,
        api_key: str | None = None,
        qps: float = 1.0,
        max_retries: int = 5,
        backoff_s: float = 2.0,
        timeout_s: float = 30.0,
        languages: Sequence[str] = ("en",),
        name: str = "perspective",
    ) -> None:
        self._key = api_key or os.environ.get("PERSPECTIVE_API_KEY") or ""
        if not self._key:
            raise SaedetoxError("The perspective judge needs an API key: set $PERSPECTIVE_API_KEY or pass api_key.")
        if qps <= 0:
            raise SaedetoxError(f"Perspective qps must be positive, got {qps}.")
        self.name, self.qps, self.max_retries, self.backoff_s = name, qps, max_retries, backoff_s
        self.timeout_s, self.languages, self._last = timeout_s, list(languages), -float("inf")

    def _wait_turn(self) -> None:
        delay = self._last + 1.0 / self.qps - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        self._last = time.monotonic()

    def _one(self, text: str) -> float:
        import requests

        body = {"comment": {"text": truncate_utf8(text)}, "languages": self.languages}
        body["requestedAttributes"] = {"TOXICITY": {}}
        problem = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            self._wait_turn()
            try:
                resp = requests.post(PERSPECTIVE_URL, params={"key": self._key}, json=body, timeout=self.timeout_s)
            except (requests.ConnectionError, requests.Timeout) as err:
                problem = f"cannot reach it ({type(err).__name__}); check the network or use profanity/probe"
                continue
            if resp.status_code == 429 or resp.status_code >= 500:
                problem = f"HTTP {resp.status_code} after {self.max_retries} retries; lower qps or try later"
                continue
            if resp.status_code != 200:
                try:
                    detail = resp.json()["error"]["message"]
                except (ValueError, KeyError, TypeError):
                    detail = resp.text[:200]
                raise SaedetoxError(f"Perspective API refused the request (HTTP {resp.status_code}): {detail}")
            try:
                return float(resp.json()["attributeScores"]["TOXICITY"]["summaryScore"]["value"])
            except (ValueError, KeyError, TypeError):
                raise SaedetoxError("Perspective API answered without a TOXICITY summary score.") from None
        raise SaedetoxError(f"Perspective API: {problem}.")

    def score(self, texts: Sequence[str]) -> np.ndarray:
        return _finish([self._one(str(t)) if str(t).strip() else 0.0 for t in texts], len(texts))


# --------------------------------------------------------------------------- registry

_FACTORIES: dict[str, Callable[..., Judge]] = {
    "profanity": ProfanityJudge,
    "probe": ProbeJudge,
    "detoxify": lambda **kw: DetoxifyJudge("original", **kw),
    "detoxify-original": lambda **kw: DetoxifyJudge("original", **kw),
    "detoxify-unbiased": lambda **kw: DetoxifyJudge("unbiased", **kw),
    "perspective": PerspectiveJudge,
}
_CLASSES = {"profanity": ProfanityJudge, "probe": ProbeJudge, "perspective": PerspectiveJudge}


def available_judges() -> list[str]:
    """Every name :func:`get_judge` accepts (the non-offline ones may still need a package, key or network)."""
    return list(_FACTORIES)


def get_judge(name: str, **options: Any) -> Judge:
    """Build the judge ``name`` with its ``options`` (e.g. ``path=`` for probe, ``api_key=`` for perspective)."""
    key = name.strip().lower()
    if key not in _FACTORIES:
        raise SaedetoxError(f"Unknown judge '{name}': choose from {', '.join(_FACTORIES)}.")
    allowed = set(inspect.signature(_CLASSES.get(key, DetoxifyJudge)).parameters) - {"name", "model_type"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise SaedetoxError(f"Judge '{key}' has no option {', '.join(unknown)} (has: {', '.join(sorted(allowed))}).")
    return _FACTORIES[key](name=key, **options)
