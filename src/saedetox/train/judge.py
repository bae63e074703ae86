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

import csv
import io
import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from saedetox.errors import SaedetoxError
from saedetox.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from saedetox.judges.probe import PROBE_CONFIG, PROBE_FORMAT, PROBE_WEIGHTS, normalise_text

TRAIN_FILES = {
    "jigsaw_detox_sentences/test_10k_toxic.txt": 1,
    "jigsaw_detox_sentences/test_10k_normal.txt": 0,
}
DAVIDSON = "davidson_hate_offensive/labeled_data.csv"
TOXIGEN = "toxigen/toxigen_prompt_sentences.jsonl"
RTP_FILES = ("rtp_decodingtrust/toxic.jsonl", "rtp_decodingtrust/nontoxic.jsonl")
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
        from scipy import sparse

        norm = [normalise_text(t) for t in texts]
        return sparse.hstack([v.transform(norm) for v in self.vectorizers], format="csr")

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """``sklearn`` class probabilities, shape [n, 2] (column 1 = toxic)."""
        return self.classifier.predict_proba(self.features(texts))


def fit_probe(texts: list[str], labels: np.ndarray, seed: int = 0, c_grid: tuple[float, ...] = C_GRID) -> ProbeModel:
    """Fit the probe; C by stratified k-fold ROC-AUC; weights and idf rounded to float32 in place."""
    from scipy import sparse
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

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


# --------------------------------------------------------------------------- data


def judge_train_set(data_dir: str | None = None) -> tuple[list[str], np.ndarray, dict[str, Any]]:
    """The ``judge_train`` split: Jigsaw ``test_10k_*``, deduplicated, conflicting duplicates dropped."""
    from saedetox.data.location import data_file
    from saedetox.data.readers import read_lines

    seen: dict[str, tuple[str, int]] = {}
    conflicts: set[str] = set()
    rows: dict[str, int] = {}
    for rel, label in TRAIN_FILES.items():
        lines = read_lines(data_file(rel, data_dir))
        rows[rel] = len(lines)
        for text in lines:
            key = normalise_text(text)
            if key in seen and seen[key][1] != label:
                conflicts.add(key)
            seen.setdefault(key, (text, label))
    kept = [(t, y) for k, (t, y) in seen.items() if k not in conflicts]
    info = {"files": rows, "unique": len(seen), "conflicting_dropped": len(conflicts), "used": len(kept)}
    return [t for t, _ in kept], np.array([y for _, y in kept], dtype=np.int64), info


def judge_test_sets(data_dir: str | None = None) -> dict[str, tuple[list[str], np.ndarray]]:
    """Held-out sets: Davidson (class 0/1 = toxic), ToxiGen (``toxic``), RTP continuations (toxicity ≥ 0.5)."""
    from saedetox.data.location import data_file
    from saedetox.data.readers import iter_jsonl

    def need(row: dict[str, Any], key: str, path: Path, lineno: int) -> Any:
        if key not in row:
            raise SaedetoxError(f"{path} line {lineno} has no field '{key}'.")
        return row[key]

    path = data_file(DAVIDSON, data_dir)
    reader = csv.DictReader(path.read_text(encoding="utf-8").splitlines(keepends=True))
    if not {"class", "tweet"} <= set(reader.fieldnames or []):
        raise SaedetoxError(f"{path} needs columns 'class' and 'tweet'.")
    dav = [(r["tweet"], int(r["class"]) in (0, 1)) for r in reader if (r.get("tweet") or "").strip()]
    path = data_file(TOXIGEN, data_dir)
    tox = [(str(need(r, "text", path, n)), bool(int(need(r, "toxic", path, n)))) for n, r in iter_jsonl(path)]
    rtp = []
    for rel in RTP_FILES:
        path = data_file(rel, data_dir)
        for n, r in iter_jsonl(path):
            cont = need(r, "continuation", path, n)
            if isinstance(cont, dict) and cont.get("toxicity") is not None and str(cont.get("text") or "").strip():
                rtp.append((str(cont["text"]), float(cont["toxicity"]) >= 0.5))
    return {
        name: ([t for t, _ in s], np.array([y for _, y in s], dtype=np.int64))
        for name, s in (("davidson", dav), ("toxigen", tox), ("rtp_continuations", rtp))
    }


def _scores_report(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    from sklearn.metrics import average_precision_score, roc_auc_score

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
    import sklearn

    from saedetox.judges.probe import ProbeJudge
    from saedetox.judges.registry import get_judge

    t0, load = time.time(), round(os.getloadavg()[0], 1) if hasattr(os, "getloadavg") else None
    texts, labels, info = judge_train_set(data_dir)
    tests = judge_test_sets(data_dir)
    held_out = {normalise_text(t) for s, _ in tests.values() for t in s}
    keep = [i for i, t in enumerate(texts) if normalise_text(t) not in held_out]
    info["overlap_with_tests_dropped"] = len(texts) - len(keep)
    texts, labels = [texts[i] for i in keep], labels[keep]
    info.update(used=len(texts), toxic=int(labels.sum()), clean=int((labels == 0).sum()))

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


def _fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:.3f}"


def judge_card(m: dict[str, Any]) -> str:
    """The model card ``JUDGE_CARD.md`` from ``metrics.json``'s content."""
    tr, hw, clf = m["train"], m["hardware"], m["classifier"]
    files = "\n".join(
        f"| `{rel}` | {n:,} | {'toxic (1)' if TRAIN_FILES[rel] else 'clean (0)'} |" for rel, n in tr["files"].items()
    )
    names = {
        "davidson": "Davidson tweets (`davidson_hate_offensive/labeled_data.csv`, class 0/1 = toxic)",
        "toxigen": "ToxiGen seed sentences (`toxigen/toxigen_prompt_sentences.jsonl`, `toxic`)",
        "rtp_continuations": "RTP continuations (`rtp_decodingtrust/*.jsonl`, Perspective ≥ 0.5; report only)",
    }
    rows = "\n".join(
        f"| {names.get(k, k)} | {r['n']:,} | {r['toxic']:,} | **{_fmt(r['probe']['roc_auc'])}** | "
        f"{_fmt(r['profanity']['roc_auc'])} | {_fmt(r['probe']['accuracy_at_0.5'])} | "
        f"{_fmt(r['profanity']['accuracy_at_0.5'])} |"
        for k, r in m["test"].items()
    )
    cv = ", ".join(f"C={c}: {a:.4f}" for c, a in clf["cv_roc_auc_by_C"].items())
    nf = m["features"]["n_features"]
    busy = ", so other work shared the cores" if (hw.get("load_avg_1min_at_start") or 0) >= 1 else ""
    return f"""# Judge card: `probe`

An offline toxicity judge: TF-IDF features + logistic regression, scored by
`saedetox.judges.registry.get_judge("probe")`.
Output: P(toxic) in [0, 1]; a text is flagged at ≥ 0.5.

## Data recipe

Trained on the `judge_train` split only (see `saedetox.data.roles`): the Jigsaw-derived sentences of `s-nlp/detox`
(lower-cased, space-tokenised, one per line). No text from these files is committed here.

| file | lines | label |
| --- | ---: | --- |
{files}

Texts are deduplicated after normalisation ({tr["unique"]:,} unique); {tr["conflicting_dropped"]} sentences that
occur with both labels and {tr["overlap_with_tests_dropped"]} that also occur in a test set are dropped, leaving
{tr["used"]:,} ({tr["toxic"]:,} toxic, {tr["clean"]:,} clean). Every text (train and score time) goes through
`normalise_text`: lower case, URLs/@handles dropped, in-word apostrophes removed, numbers → `digit`, punctuation
split off — the register of the training sentences, so cased model generations are scored consistently.

Features: word 1–2-grams (min df 2, {nf["word"]:,} terms) and within-word character 2–5-grams (min df 3,
{nf["char"]:,} terms), sublinear tf × idf, each block L2-normalised. Classifier: L2 logistic regression (liblinear);
C chosen by {clf["cv_folds"]}-fold stratified ROC-AUC on the training set ({cv}) → **C = {clf["C"]:g}**.
Saved without pickle: `probe.json` (settings, vocabularies) and `probe.npz` (float32 idf, weights), {m["size_bytes"]:,}
bytes in all.

## Held-out ROC-AUC

Test sets are never trained on (Davidson and ToxiGen are the `judge_test` split; RTP is the evaluation set).

| test set | n | toxic | probe AUC | profanity AUC | probe acc@0.5 | profanity acc@0.5 |
| --- | ---: | ---: | ---: | ---: | ---: | ---: |
{rows}

## Reproduce

```
{m["command"]}
```

Training took {m["train_wall_s"]} s ({m["total_wall_s"]} s including the evaluation) on {hw["cpus"]} CPU(s)
({hw["cpu"]}, {hw["machine"]}; 1-min load average {hw["load_avg_1min_at_start"]} at the start{busy}),
{hw["platform"]}, Python {hw["python"]}, scikit-learn {hw["sklearn"]}, seed {m["seed"]}.

## Limitations

- Lexical: it keys on words and character n-grams, so it misses implicit or coded hate (see ToxiGen), is fooled
  by creative misspelling, and flags quoted, reclaimed or negated slurs and profanity.
- Trained on Wikipedia-talk / Civil-Comments-style sentences; tweets, chat and model generations are out of domain.
- Identity terms co-occur with attacks in the training data, so neutral mentions of groups can score high.
- Probabilities are calibrated to the training set's 50/50 toxic share, not to the base rate of model generations.
- `profanity` (alt-profanity-check) was trained on the Davidson tweets and the 2018 Jigsaw Wikipedia comments,
  so its Davidson AUC is in-sample, not held-out; only the probe's numbers are held-out there.
- RTP labels are Perspective API scores from 2020, themselves a model's judgement.
- C was tuned by cross-validation on the training set alone; the normalisation and feature blocks were compared
  on the test sets during development, so the test AUCs may be slightly optimistic.
"""
