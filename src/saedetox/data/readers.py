"""Readers for the text formats users bring, each failing with one clear line.

Formats: plain text (one item per line), JSONL (a field, dotted paths allowed such as
``prompt.text``), CSV/TSV (a column), RealToxicityPrompts JSONL (allenai schema), ParaDetox
pairs (TSV with ``toxic``/``neutral1..3``) and a Hugging Face dataset name (network only).
:func:`read_texts` picks the reader from the file suffix.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from saedetox.errors import SaedetoxError

csv.field_size_limit(1 << 30)


@dataclass(frozen=True)
class Prompt:
    """One RealToxicityPrompts prompt."""

    text: str
    toxicity: float | None = None
    challenging: bool = False
    uid: str = ""


@dataclass(frozen=True)
class Pair:
    """One ParaDetox pair: a toxic sentence and a neutral paraphrase of it."""

    toxic: str
    neutral: str


_SPACE_BEFORE = re.compile(r"\s+([,.!?;:%)\]}])")
_SPACE_AFTER = re.compile(r"([(\[{$])\s+")
_CLITIC = re.compile(r"\s+(n't|'s|'re|'ve|'ll|'d|'m)\b", re.IGNORECASE)
_I = re.compile(r"\bi\b")
_SENT_START = re.compile(r"(^|[.!?]\s+)([a-z])")


def detokenise(text: str, sentence_case: bool = False) -> str:
    """Undo PTB-style spacing (`` ``x , y '' `` → ``"x, y"``); optionally sentence-case."""
    t = text.replace("``", '"').replace("''", '"')
    t = _SPACE_BEFORE.sub(r"\1", t)
    t = _SPACE_AFTER.sub(r"\1", t)
    t = _CLITIC.sub(r"\1", t)
    t = re.sub(r'"\s+([^"]*?)\s+"', r'"\1"', t)
    t = re.sub(r"[ \t]+", " ", t).strip()
    if sentence_case:
        t = _I.sub("I", t)
        t = _SENT_START.sub(lambda m: m.group(1) + m.group(2).upper(), t)
    return t


def _check_file(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    try:
        if not p.exists():
            raise SaedetoxError(f"File not found: {p}.")
        if p.is_dir():
            raise SaedetoxError(f"{p} is a directory; expected a file.")
        if p.stat().st_size == 0:
            raise SaedetoxError(f"{p} is empty.")
    except OSError as err:  # a name too long, a folder on the path that cannot be searched
        raise SaedetoxError(f"Cannot read {_short(p)}: {err.strerror or type(err).__name__}.") from None
    return p


def _short(p: Path) -> str:
    s = str(p)
    return s if len(s) <= 120 else f"{s[:100]}… ({len(s)} characters)"


def _read_text(path: Path) -> str:
    """The file's text; a UTF-8 byte-order mark is dropped (editors on Windows write one)."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise SaedetoxError(f"{path} is not valid UTF-8 (byte {err.start}); re-encode it as UTF-8.") from None
    except OSError as err:
        raise SaedetoxError(f"Cannot read {path}: {err.strerror or type(err).__name__}.") from None


def _nonempty(items: list[Any], path: Path, what: str = "items") -> list[Any]:
    if not items:
        raise SaedetoxError(f"{path} holds no {what}.")
    return items


def _dig(row: dict[str, Any], field: str, path: Path, lineno: int) -> Any:
    value: Any = row
    for part in field.split("."):
        if not isinstance(value, dict) or part not in value:
            raise SaedetoxError(f"{path} line {lineno} has no field '{field}'.")
        value = value[part]
    return value


def read_lines(path: str | os.PathLike[str]) -> list[str]:
    """Plain text: one item per non-blank line."""
    p = _check_file(path)
    return _nonempty([ln.strip() for ln in _read_text(p).splitlines() if ln.strip()], p, "text lines")


def iter_jsonl(path: str | os.PathLike[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    p = _check_file(path)
    for lineno, line in enumerate(_read_text(p).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise SaedetoxError(f"{p} line {lineno} is not valid JSON ({err.msg}).") from None
        if not isinstance(row, dict):
            raise SaedetoxError(f"{p} line {lineno} is not a JSON object.")
        yield lineno, row


def read_jsonl(path: str | os.PathLike[str], field: str = "text") -> list[str]:
    """JSONL: the string at ``field`` (dotted path) of every row."""
    p = Path(path)
    out = []
    for lineno, row in iter_jsonl(p):
        value = _dig(row, field, p, lineno)
        if not isinstance(value, str):
            raise SaedetoxError(f"{p} line {lineno}: field '{field}' is not a string.")
        if value.strip():
            out.append(value)
    return _nonempty(out, p, f"non-empty '{field}' values")


def read_table(path: str | os.PathLike[str], column: str = "text", delimiter: str | None = None) -> list[str]:
    """CSV or TSV (by suffix unless ``delimiter`` is given): one column."""
    p = _check_file(path)
    delim = delimiter or ("\t" if p.suffix.lower() in {".tsv", ".tab"} else ",")
    text = _read_text(p)
    reader = csv.DictReader(text.splitlines(), delimiter=delim)
    if reader.fieldnames is None or column not in reader.fieldnames:
        cols = ", ".join(reader.fieldnames or [])
        raise SaedetoxError(f"{p} has no column '{column}' (columns: {cols}).")
    out = [row[column].strip() for row in reader if (row.get(column) or "").strip()]
    return _nonempty(out, p, f"non-empty '{column}' values")


def read_rtp(path: str | os.PathLike[str]) -> list[Prompt]:
    """RealToxicityPrompts JSONL in the allenai schema (``prompt.text``, ``prompt.toxicity``)."""
    p = Path(path)
    out = []
    for lineno, row in iter_jsonl(p):
        prompt = _dig(row, "prompt", p, lineno)
        text = _dig(row, "prompt.text", p, lineno)
        if not isinstance(text, str) or not text.strip():
            raise SaedetoxError(f"{p} line {lineno}: prompt.text is empty.")
        tox = prompt.get("toxicity") if isinstance(prompt, dict) else None
        uid = f"{row.get('filename', p.stem)}:{row.get('begin', lineno)}"
        out.append(Prompt(text, float(tox) if tox is not None else None, bool(row.get("challenging", False)), uid))
    return _nonempty(out, p, "prompts")


def read_prompt_texts(path: str | os.PathLike[str], field: str = "text") -> list[str]:
    """Prompt texts from a file: a RealToxicityPrompts JSONL (``prompt.text``) is read as such, as ``evaluate``
    reads it; any other file by :func:`read_texts` (``field`` names the JSONL/CSV field)."""
    p = Path(path)
    if p.suffix.lower() in {".jsonl", ".ndjson", ".json"} and field == "text":
        first = next(iter_jsonl(p), None)
        if first is not None and isinstance(first[1].get("prompt"), dict) and "text" not in first[1]:
            return [q.text for q in read_rtp(p)]
    return read_texts(p, field)


def read_paradetox_pairs(path: str | os.PathLike[str]) -> list[Pair]:
    """ParaDetox TSV (``toxic``, ``neutral1``..): one pair per row, first neutral paraphrase."""
    p = _check_file(path)
    reader = csv.DictReader(_read_text(p).splitlines(keepends=True), delimiter="\t")
    names = reader.fieldnames or []
    if "toxic" not in names or "neutral1" not in names:
        raise SaedetoxError(f"{p} is not a ParaDetox TSV: it needs columns 'toxic' and 'neutral1'.")
    out = [
        Pair(row["toxic"].strip(), row["neutral1"].strip())
        for row in reader
        if (row.get("toxic") or "").strip() and (row.get("neutral1") or "").strip()
    ]
    return _nonempty(out, p, "pairs")


def read_hf_dataset(name: str, field: str = "text", split: str = "train", limit: int | None = None) -> list[str]:
    """A Hugging Face dataset column (needs network or a filled HF cache)."""
    try:
        import datasets  # deferred: optional (it ships with lm-eval) and needed only for ``hf:`` sources
    except ImportError:  # pragma: no cover - datasets ships with lm-eval
        raise SaedetoxError("Reading a hub dataset needs the 'datasets' package: pip install datasets.") from None
    try:
        ds = datasets.load_dataset(name, split=split)
    except Exception as err:  # noqa: BLE001 - hub errors come in many types
        raise SaedetoxError(
            f"Could not load dataset '{name}' from the Hugging Face hub ({type(err).__name__}); "
            "with no network, download it elsewhere and pass a local .jsonl/.csv/.txt file instead."
        ) from None
    if field not in ds.column_names:
        raise SaedetoxError(f"Dataset '{name}' has no field '{field}' (fields: {', '.join(ds.column_names)}).")
    values = ds[field] if limit is None else ds[field][:limit]
    return [str(v) for v in values if str(v).strip()]


def read_texts(spec: str | os.PathLike[str], field: str = "text") -> list[str]:
    """Read texts from a file, choosing the reader by suffix; ``hf:NAME`` reads a hub dataset."""
    s = str(spec)
    if s.startswith("hf:"):
        return read_hf_dataset(s[3:], field=field)
    p = Path(s)
    suffix = p.suffix.lower()
    if suffix in {".jsonl", ".ndjson"}:
        return read_jsonl(p, field)
    if suffix in {".csv", ".tsv", ".tab"}:
        return read_table(p, field)
    return read_lines(p)
