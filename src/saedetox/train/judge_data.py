"""The probe judge's data: the ``judge_train`` split and the held-out test sets (see :mod:`saedetox.data.roles`)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from saedetox.data.location import data_file
from saedetox.data.readers import iter_jsonl, read_lines
from saedetox.errors import SaedetoxError
from saedetox.judges.probe import normalise_text

TRAIN_FILES = {
    "jigsaw_detox_sentences/test_10k_toxic.txt": 1,
    "jigsaw_detox_sentences/test_10k_normal.txt": 0,
}
DAVIDSON = "davidson_hate_offensive/labeled_data.csv"
TOXIGEN = "toxigen/toxigen_prompt_sentences.jsonl"
RTP_FILES = ("rtp_decodingtrust/toxic.jsonl", "rtp_decodingtrust/nontoxic.jsonl")


def judge_train_set(data_dir: str | None = None) -> tuple[list[str], np.ndarray, dict[str, Any]]:
    """The ``judge_train`` split: Jigsaw ``test_10k_*``, deduplicated, conflicting duplicates dropped."""
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
