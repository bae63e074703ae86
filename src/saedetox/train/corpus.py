"""The reference world's LM corpus: which files, how they are cleaned, how they are weighted.

The recipe is data, not code paths: :data:`RECIPE` lists every source with its reader and a
repeat weight (``2.0`` = seen twice per epoch, ``0.5`` = half of it, chosen by hash). Comment
sources (Jigsaw, ParaDetox) are lower-cased and space-tokenised upstream; :func:`detokenise`
restores ordinary spacing and sentence case so the model learns one written register for
clean and toxic text alike. Roles and held-out chunks come from :mod:`saedetox.splits`.
"""

from __future__ import annotations

import csv
import functools
import html
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from saedetox import splits
from saedetox.data import detokenise

csv.field_size_limit(1 << 30)

CHUNK_CHARS = 2000


@dataclass(frozen=True)
class Source:
    name: str
    reader: Callable[[Path], Iterator[str]]
    weight: float
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
    from saedetox.data import read_paradetox_pairs

    for pair in read_paradetox_pairs(root / "paradetox/paradetox.tsv"):
        if splits.paradetox_role(pair.toxic) == "lm":
            yield detokenise(pair.toxic if side == "toxic" else pair.neutral, sentence_case=True)


def read_paradetox_lm_toxic(root: Path) -> Iterator[str]:
    return _paradetox_lm(root, "toxic")


def read_paradetox_lm_neutral(root: Path) -> Iterator[str]:
    return _paradetox_lm(root, "neutral")


RECIPE: tuple[Source, ...] = (
    Source("gutenberg", read_gutenberg, 1.0, "clean"),
    Source("brown", read_brown, 1.0, "clean"),
    Source("reuters", read_reuters, 0.5, "clean"),
    Source("movie_reviews", read_movie_reviews, 1.0, "clean"),
    Source("speeches", read_speeches, 1.0, "clean"),
    Source("webtext", read_webtext, 1.0, "clean"),
    Source("switchboard", read_switchboard, 1.0, "clean"),
    Source("nps_chat", read_nps_chat, 1.0, "clean"),
    Source("ethics_reddit", read_ethics, 1.0, "clean"),
    Source("paradetox_cannot_rewrite", read_cannot_rewrite, 5.0, "comments"),
    Source("jigsaw_dev_toxic", read_jigsaw_dev_toxic, 5.0, "comments"),
    Source("jigsaw_dev_normal", read_jigsaw_dev_normal, 2.0, "comments"),
    Source("paradetox_lm_toxic", read_paradetox_lm_toxic, 5.0, "comments"),
    Source("paradetox_lm_neutral", read_paradetox_lm_neutral, 2.0, "comments"),
)


def source_docs(root: Path, source: Source, role: str = "lm") -> Iterator[str]:
    """Documents of one source for ``role`` in ("lm", "lm_heldout"), before weighting."""
    for doc in source.reader(root):
        if source.kind == "clean":
            for piece in chunks(doc):
                held = splits.lm_chunk_is_heldout(piece)
                if (role == "lm_heldout") == held:
                    yield piece
        elif role == "lm":
            yield doc


def weighted(docs: list[str], weight: float, name: str) -> list[str]:
    """Repeat ``docs`` ``floor(weight)`` times plus a hash-chosen fraction of one more copy."""
    whole = int(weight)
    frac = weight - whole
    out = docs * whole
    if frac > 0:
        out += [d for d in docs if splits.stable_unit(d, f"weight-{name}") < frac]
    return out


def heldout_texts(root: Path) -> list[str]:
    """The clean held-out chunks (for held-out perplexity); read once per process and folder."""
    return list(_heldout_texts(Path(root).resolve()))


@functools.lru_cache(maxsize=4)
def _heldout_texts(root: Path) -> tuple[str, ...]:
    return tuple(d for s in RECIPE if s.kind == "clean" for d in source_docs(root, s, "lm_heldout"))
