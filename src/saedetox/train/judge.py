"""Train the offline ``probe`` judge (``saedetox train-judge``) and write its card.

Recipe: the ``judge_train`` split only (Jigsaw ``test_10k_toxic`` = 1, ``test_10k_normal`` = 0),
every text mapped by :func:`saedetox.judges.probe.normalise_text`, TF-IDF on word 1–2-grams and
within-word character 2–5-grams (sublinear tf, each block L2-normalised, rare terms pruned by
document frequency), then L2 logistic regression with C picked by stratified k-fold ROC-AUC on
the training set. The fitted model is rounded to float32 and saved without pickle: vocabularies
and settings in ``probe.json``, idf vectors and weights in ``probe.npz``; :class:`ProbeJudge`
reloads them into the same scorer. ROC-AUC is reported on the held-out ``judge_test`` split
(Davidson, ToxiGen) and on RealToxicityPrompts continuations (report only), next to the
``profanity`` judge.
"""

from __future__ import annotations

import io
import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold

from saedetox.errors import SaedetoxError
from saedetox.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from saedetox.judges.probe import PROBE_CONFIG, PROBE_FORMAT, PROBE_WEIGHTS, ProbeJudge, normalise_text
from saedetox.judges.registry import get_judge
from saedetox.progress import note
from saedetox.train.judge_card import judge_card
from saedetox.train.judge_data import judge_test_sets, judge_train_set

BLOCKS: tuple[dict[str, Any], ...] = (
    {"name": "word", "analyzer": "word", "ngram_range": (1, 2), "token_pattern": r"\S+", "min_df": 2},
    {"name": "char", "analyzer": "char_wb", "ngram_range": (2, 5), "token_pattern": None, "min_df": 3},
)
C_GRID = (1.0, 3.0, 10.0, 30.0)
CV_FOLDS = 5


@dataclass
class ProbeModel:
    """The in-memory probe: one fitted ``TfidfVectorizer`` per block and a ``LogisticRegression``."""

    vectorizers: list[Any]
    classifier: Any
    C: float
    cv_folds: int
    cv_auc: dict[str, float] = field(default_factory=dict)

    def features(self, texts: list[str]) -> Any:
        norm = [normalise_text(t) for t in texts]
        return sparse.hstack([v.transform(norm) for v in self.vectorizers], format="csr")

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """``sklearn`` class probabilities, shape [n, 2] (column 1 = toxic)."""
        return self.classifier.predict_proba(self.features(texts))


def fit_probe(texts: list[str], labels: np.ndarray, seed: int = 0, c_grid: tuple[float, ...] = C_GRID) -> ProbeModel:
    """Fit the probe; C by stratified k-fold ROC-AUC; weights and idf rounded to float32 in place."""
    y = np.asarray(labels, dtype=np.int64)
    folds = min(CV_FOLDS, int(np.bincount(y, minlength=2).min()))
    if folds < 2:
        raise SaedetoxError("The judge training set needs at least 2 toxic and 2 non-toxic sentences.")
    norm = [normalise_text(t) for t in texts]
    vecs = []
    for b in BLOCKS:
        vec = TfidfVectorizer(
            analyzer=b["analyzer"],
            ngram_range=b["ngram_range"],
            token_pattern=b["token_pattern"],
            min_df=b["min_df"],
            lowercase=False,
            sublinear_tf=True,
            dtype=np.float64,
        )
        try:
            vec.fit(norm)
        except ValueError:  # every term pruned by min_df
            raise SaedetoxError(
                f"The judge training set is too small: no {b['name']} n-gram is frequent enough."
            ) from None
        vec.idf_ = vec.idf_.astype(np.float32).astype(np.float64)
        vecs.append(vec)
    x = sparse.hstack([v.transform(norm) for v in vecs], format="csr")

    def make(c: float) -> Any:
        return LogisticRegression(C=c, solver="liblinear", max_iter=1000, random_state=seed)

    cv: dict[str, float] = {}
    for c in c_grid:
        aucs = []
        for tr, te in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y):
            aucs.append(roc_auc_score(y[te], make(c).fit(x[tr], y[tr]).decision_function(x[te])))
        cv[f"{c:g}"] = float(np.mean(aucs))
    best = max(c_grid, key=lambda c: (round(cv[f"{c:g}"], 4), -c))  # ties → stronger regularisation
    clf = make(best).fit(x, y)
    clf.coef_ = clf.coef_.astype(np.float32).astype(np.float64)
    clf.intercept_ = clf.intercept_.astype(np.float32).astype(np.float64)
    return ProbeModel(vecs, clf, best, folds, cv)


def save_probe(model: ProbeModel, out: str | os.PathLike[str], extra: dict[str, Any] | None = None) -> None:
    """Write ``probe.json`` (settings, vocabularies) and ``probe.npz`` (float32 idf, coef, intercept)."""
    out = Path(out)
    blocks, arrays = [], {}
    for b, vec in zip(BLOCKS, model.vectorizers, strict=True):
        terms = [t for t, _ in sorted(vec.vocabulary_.items(), key=lambda kv: kv[1])]
        blocks.append(
            {
                "name": b["name"],
                "analyzer": b["analyzer"],
                "ngram_range": list(b["ngram_range"]),
                "token_pattern": b["token_pattern"],
                "sublinear_tf": True,
                "norm": "l2",
                "terms": terms,
            }
        )
        arrays[f"idf_{b['name']}"] = vec.idf_.astype(np.float32)
    arrays["coef"] = model.classifier.coef_.reshape(-1).astype(np.float32)
    arrays["intercept"] = model.classifier.intercept_.reshape(-1).astype(np.float32)
    config = {
        "format": PROBE_FORMAT,
        "normaliser": "saedetox.judges.probe.normalise_text",
        "classifier": {"type": "logistic_regression", "C": model.C, "positive": "toxic"},
        **(extra or {}),
        "blocks": blocks,
    }
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(out / PROBE_WEIGHTS, buf.getvalue())
    atomic_write_text(out / PROBE_CONFIG, json.dumps(config, ensure_ascii=False) + "\n")


def _scores_report(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    both = len(set(y.tolist())) == 2
    return {
        "roc_auc": float(roc_auc_score(y, p)) if both else None,
        "average_precision": float(average_precision_score(y, p)) if both else None,
        "accuracy_at_0.5": float(((p >= 0.5) == (y == 1)).mean()),
        "flagged_toxic_share": float((p[y == 1] >= 0.5).mean()) if (y == 1).any() else None,
        "flagged_clean_share": float((p[y == 0] >= 0.5).mean()) if (y == 0).any() else None,
    }


# --------------------------------------------------------------------------- entry point


def train_judge(out: str | os.PathLike[str], data_dir: str | None = None, seed: int = 0) -> dict[str, Any]:
    """Train the ``probe`` judge into ``out`` (``probe.json``, ``probe.npz``, ``metrics.json``, ``JUDGE_CARD.md``).

    Returns the metrics written to ``metrics.json``.
    """

    t0, load = time.time(), round(os.getloadavg()[0], 1) if hasattr(os, "getloadavg") else None
    note("reading the judge's training and test sets")
    texts, labels, info = judge_train_set(data_dir)
    tests = judge_test_sets(data_dir)
    held_out = {normalise_text(t) for s, _ in tests.values() for t in s}
    keep = [i for i, t in enumerate(texts) if normalise_text(t) not in held_out]
    info["overlap_with_tests_dropped"] = len(texts) - len(keep)
    texts, labels = [texts[i] for i in keep], labels[keep]
    info.update(used=len(texts), toxic=int(labels.sum()), clean=int((labels == 0).sum()))

    note(f"fitting the probe judge on {len(texts)} texts")
    model = fit_probe(texts, labels, seed=seed)
    out = Path(out)
    settings = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in b.items()} for b in BLOCKS]
    train_s = time.time() - t0
    save_probe(model, out, {"trained_on": info, "seed": seed})
    probe, profanity = ProbeJudge(out), get_judge("profanity")
    results = {
        name: {
            "n": len(y),
            "toxic": int(y.sum()),
            "probe": _scores_report(y, probe.score(x)),
            "profanity": _scores_report(y, profanity.score(x)),
        }
        for name, (x, y) in tests.items()
    }
    command = f"saedetox train-judge --out {out}" + (f" --data-dir {data_dir}" if data_dir else "") + f" --seed {seed}"
    metrics = {
        "judge": "probe",
        "command": command,
        "seed": seed,
        "train": info,
        "features": {
            "blocks": settings,
            "n_features": {b["name"]: len(v.vocabulary_) for b, v in zip(BLOCKS, model.vectorizers, strict=True)},
        },
        "classifier": {
            "type": "logistic_regression (liblinear, L2)",
            "C": model.C,
            "cv_folds": model.cv_folds,
            "cv_roc_auc_by_C": model.cv_auc,
        },
        "test": results,
        "train_wall_s": round(train_s, 1),
        "total_wall_s": round(time.time() - t0, 1),
        "hardware": {
            "machine": platform.machine(),
            "cpu": _cpu_model(),
            "cpus": os.cpu_count(),
            "load_avg_1min_at_start": load,
            "python": platform.python_version(),
            "sklearn": sklearn.__version__,
            "platform": platform.platform(terse=True),
        },
    }
    metrics["size_bytes"] = sum((out / f).stat().st_size for f in (PROBE_CONFIG, PROBE_WEIGHTS))
    atomic_write_json(out / "metrics.json", metrics)
    atomic_write_text(out / "JUDGE_CARD.md", judge_card(metrics))
    return metrics


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
