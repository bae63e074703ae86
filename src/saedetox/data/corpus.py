"""The reference world's LM corpus: which files, and how they are read and cleaned.

:data:`SOURCES` lists every source with its reader and kind. Comment sources (Jigsaw,
ParaDetox) are lower-cased and space-tokenised upstream; :func:`detokenise` restores ordinary
spacing and sentence case so the model learns one written register for clean and toxic text
alike. Roles and held-out chunks come from :mod:`saedetox.data.roles`; how often training sees
each source is the training mix, :mod:`saedetox.train.corpus`. The held-out chunks
(:func:`heldout_texts`) are the evaluation's clean text.
"""

from __future__ import annotations

import csv
import html
import itertools
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from saedetox.data.readers import detokenise, read_paradetox_pairs
from saedetox.data.roles import lm_chunk_is_heldout, paradetox_role

csv.field_size_limit(1 << 30)

CHUNK_CHARS = 2000


@dataclass(frozen=True)
class Source:
    name: str
    reader: Callable[[Path], Iterator[str]]
    kind: str  # "clean" (lm_corpus: chunked, 2% held out) or "comments"


# --------------------------------------------------------------------------- cleaning


def unwrap(text: str) -> str:
    """Join hard-wrapped lines inside paragraphs; keep blank-line paragraph breaks."""
    paras = re.split(r"\n\s*\n", text)
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines() if line.strip()) for p in paras if p.strip())


def chunks(text: str, size: int = CHUNK_CHARS) -> Iterator[str]:
    """Split a long document at paragraph boundaries into pieces of about ``size`` chars."""
    buf: list[str] = []
    n = 0
    for para in text.split("\n"):
        if not para.strip():
            continue
        buf.append(para)
        n += len(para) + 1
        if n >= size:
            yield "\n".join(buf)
            buf, n = [], 0
    if buf:
        yield "\n".join(buf)


# --------------------------------------------------------------------------- readers


def _jsonl_field(path: Path, field: str) -> Iterator[str]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield str(json.loads(line)[field])


def read_gutenberg(root: Path) -> Iterator[str]:
    for path in sorted((root / "lm_corpus/nltk_gutenberg").glob("*.txt")):
        yield unwrap(path.read_text(encoding="utf-8", errors="replace"))


def read_brown(root: Path) -> Iterator[str]:
    for text in _jsonl_field(root / "lm_corpus/nltk_brown/brown_plain.jsonl", "text"):
        yield "\n".join(detokenise(line) for line in text.split("\n"))


def read_reuters(root: Path) -> Iterator[str]:
    for text in _jsonl_field(root / "lm_corpus/nltk_reuters/reuters21578_apte.jsonl", "text"):
        yield unwrap(html.unescape(text))


def read_movie_reviews(root: Path) -> Iterator[str]:
    for text in _jsonl_field(root / "lm_corpus/nltk_movie_reviews/polarity_v2.jsonl", "text"):
        yield "\n".join(detokenise(line, sentence_case=True) for line in text.split("\n"))


def read_speeches(root: Path) -> Iterator[str]:
    for name in ("inaugural.jsonl", "state_union.jsonl"):
        for text in _jsonl_field(root / "lm_corpus/nltk_us_speeches" / name, "text"):
            yield unwrap(text)


def read_webtext(root: Path) -> Iterator[str]:
    for name in ("overheard", "singles", "wine"):
        text = (root / "lm_corpus/nltk_webtext" / name).read_text(encoding="utf-8", errors="replace")
        yield text


def read_switchboard(root: Path) -> Iterator[str]:
    text = (root / "lm_corpus/nltk_switchboard/transcript").read_text(encoding="utf-8", errors="replace")
    yield re.sub(r"^[AB]\.\d+:\s*", "", text, flags=re.MULTILINE)


def read_nps_chat(root: Path) -> Iterator[str]:
    current, lines = None, []
    with (root / "lm_corpus/nltk_nps_chat/nps_chat_posts.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            if row.get("class") == "System":
                continue
            if row["file"] != current and lines:
                yield "\n".join(lines)
                lines = []
            current = row["file"]
            lines.append(row["text"])
    if lines:
        yield "\n".join(lines)


def read_ethics(root: Path) -> Iterator[str]:
    base = root / "lm_corpus/ethics_commonsense_reddit"
    for name in ("cm_test.csv", "cm_test_hard.csv"):
        with (base / name).open(encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                yield row["input"]
    with (base / "cm_ambig.csv").open(encoding="utf-8", newline="") as fh:
        for row in csv.reader(fh):
            if row:
                yield row[0]


def read_cannot_rewrite(root: Path) -> Iterator[str]:
    with (root / "paradetox/paradetox_cannot_rewrite.tsv").open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t")
        next(reader, None)
        for row in reader:
            if len(row) >= 2 and row[1].strip():
                yield detokenise(row[1].strip().strip('"').rstrip("\\ "), sentence_case=True)


def _lines(path: Path) -> Iterator[str]:
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if line.strip():
                yield detokenise(line.strip(), sentence_case=True)


def read_jigsaw_dev_toxic(root: Path) -> Iterator[str]:
    return _lines(root / "jigsaw_detox_sentences/dev_toxic.txt")


def read_jigsaw_dev_normal(root: Path) -> Iterator[str]:
    return _lines(root / "jigsaw_detox_sentences/dev_normal.txt")


def _paradetox_lm(root: Path, side: str) -> Iterator[str]:
    for pair in read_paradetox_pairs(root / "paradetox/paradetox.tsv"):
        if paradetox_role(pair.toxic) == "lm":
            yield detokenise(pair.toxic if side == "toxic" else pair.neutral, sentence_case=True)


def read_paradetox_lm_toxic(root: Path) -> Iterator[str]:
    return _paradetox_lm(root, "toxic")


def read_paradetox_lm_neutral(root: Path) -> Iterator[str]:
    return _paradetox_lm(root, "neutral")


SOURCES: tuple[Source, ...] = (
    Source("gutenberg", read_gutenberg, "clean"),
    Source("brown", read_brown, "clean"),
    Source("reuters", read_reuters, "clean"),
    Source("movie_reviews", read_movie_reviews, "clean"),
    Source("speeches", read_speeches, "clean"),
    Source("webtext", read_webtext, "clean"),
    Source("switchboard", read_switchboard, "clean"),
    Source("nps_chat", read_nps_chat, "clean"),
    Source("ethics_reddit", read_ethics, "clean"),
    Source("paradetox_cannot_rewrite", read_cannot_rewrite, "comments"),
    Source("jigsaw_dev_toxic", read_jigsaw_dev_toxic, "comments"),
    Source("jigsaw_dev_normal", read_jigsaw_dev_normal, "comments"),
    Source("paradetox_lm_toxic", read_paradetox_lm_toxic, "comments"),
    Source("paradetox_lm_neutral", read_paradetox_lm_neutral, "comments"),
)


def source_docs(root: Path, source: Source, role: str = "lm") -> Iterator[str]:
    """Documents of one source for ``role`` in ("lm", "lm_heldout"), before weighting."""
    for doc in source.reader(root):
        if source.kind == "clean":
            for piece in chunks(doc):
                held = lm_chunk_is_heldout(piece)
                if (role == "lm_heldout") == held:
                    yield piece
        elif role == "lm":
            yield doc


def heldout_texts(root: Path, n: int | None = None) -> list[str]:
    """The clean held-out chunks (for held-out perplexity); read once per process and folder.

    ``n`` asks for the first ``n`` chunks only: the corpus is then read only as far as they reach
    (the same chunks, in the same order, as the first ``n`` of the whole list).
    """
    root = Path(root).resolve()
    if n is None or (root, None) in _HELDOUT:
        return list(_cached_heldout(root, None))[:n]
    return list(_cached_heldout(root, n))


_HELDOUT: dict[tuple[Path, int | None], tuple[str, ...]] = {}


def _cached_heldout(root: Path, n: int | None) -> tuple[str, ...]:
    if (root, n) not in _HELDOUT:
        docs = (d for s in SOURCES if s.kind == "clean" for d in source_docs(root, s, "lm_heldout"))
        _HELDOUT[(root, n)] = tuple(itertools.islice(docs, n))
    return _HELDOUT[(root, n)]
