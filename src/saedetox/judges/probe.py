"""The ``probe`` judge: our TF-IDF + logistic-regression model, read from JSON + npz (no pickle)."""

from __future__ import annotations

import html
import json
import os
import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse
from scipy.special import expit
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.preprocessing import normalize

from saedetox.errors import SaedetoxError
from saedetox.judges.base import batches, finish

PROBE_DIR = Path(__file__).resolve().parents[1] / "assets" / "judge" / "probe"
PROBE_CONFIG, PROBE_WEIGHTS = "probe.json", "probe.npz"
PROBE_FORMAT = "saedetox-tfidf-logreg-v1"

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


class ProbeJudge:
    """The ``probe`` judge: TF-IDF blocks (word / char n-grams) → logistic regression, from JSON + npz.

    Scores equal ``sklearn`` ``predict_proba`` of the trained model (see :mod:`saedetox.train.judge`).
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, batch_size: int = 4096, name: str = "probe") -> None:
        folder = Path(path) if path is not None else PROBE_DIR
        cfg_path, w_path = folder / PROBE_CONFIG, folder / PROBE_WEIGHTS
        if not cfg_path.is_file() or not w_path.is_file():
            raise SaedetoxError(
                f"No probe judge in {folder} (needs {PROBE_CONFIG} and {PROBE_WEIGHTS}): "
                "train one (the train-judge command) and pass that folder, or use the profanity judge."
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
                f"Probe judge in {folder} is unreadable ({err}); retrain it (the train-judge command)."
            ) from None
        self.name, self.batch_size, self.path, self.config = name, batch_size, folder, cfg

    def features(self, texts: Sequence[str]) -> Any:
        """The TF-IDF feature matrix (scipy CSR) of ``texts``, blocks side by side, each row L2-normalised."""
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
        out = [expit(self.decision(batch)) for batch in batches(texts, self.batch_size)]
        return finish(np.concatenate(out) if out else [], len(texts))
