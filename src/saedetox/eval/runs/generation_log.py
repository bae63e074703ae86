"""``generations.jsonl``: a run's continuations, one line per prompt, so a run resumes row by row.

Rows are appended batch by batch (one write, flushed and fsync'd); batches group prompts by
length, so rows arrive out of prompt order, and the finished file is rewritten in prompt order
(:meth:`GenerationLog.finish`). An interruption can leave
only the last line torn (a partly written batch is a prefix of its bytes): it is dropped on
reading, and the batch is sampled again as a whole (its seed makes it reproducible only as a
whole) but only its missing rows are written, so the file ends byte-identical to an
uninterrupted run's. A steered batch's first row also holds the batch's steering statistics
(:data:`PUSH_TOTALS`), so they survive an interruption with the rows. Anything else that is not
a row of this run — a corrupt line before the last, a row for another prompt or with another
number of samples — is an error, never skipped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from saedetox.errors import SaedetoxError
from saedetox.io import atomic_write_text

#: the row key holding a steered batch's statistics (per intervention, ``InterventionStats.totals``): on
#: the batch's first row, written in the same append as the batch's rows
PUSH_TOTALS = "push_totals"


class GenerationLog:
    """The rows of ``generations.jsonl`` by prompt index (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: dict[int, dict[str, Any]] = {}
        if path.exists():
            self._read()

    def _read(self) -> None:
        lines = self.path.read_bytes().split(b"\n")
        torn = lines.pop() != b""  # a complete file ends with a newline
        clean = not torn
        for n, line in enumerate(lines):
            if not line.strip():
                clean = False
                continue
            row = _parse(line)
            if row is None:
                raise SaedetoxError(
                    f"{self.path} line {n + 1} is corrupt (only the last line can be cut by an interruption); "
                    "repair or delete the file to regenerate it."
                )
            i = row["i"]
            if i in self.rows:
                clean = False  # a duplicate row
            self.rows.setdefault(i, row)
        if not clean:
            self._rewrite()

    def _rewrite(self) -> None:
        """The stored rows in the order they were written (batch by batch), without torn or duplicate lines."""
        atomic_write_text(self.path, "".join(json.dumps(row) + "\n" for row in self.rows.values()))

    def check(self, prompts: Sequence[str], n_samples: int) -> None:
        """Every stored row must belong to this run: a known prompt, its text, ``n_samples`` continuations."""
        for i, row in self.rows.items():
            if i >= len(prompts) or row.get("prompt") != prompts[i] or len(row["continuations"]) != n_samples:
                raise SaedetoxError(
                    f"{self.path} holds a row (prompt {i}) that does not belong to this run; "
                    "delete the file, or start the run again in another folder."
                )

    def done_batches(self, batches: list[list[int]]) -> set[int]:
        """The batches (lists of prompt indices) whose every row is stored."""
        return {b for b, members in enumerate(batches) if all(i in self.rows for i in members)}

    def batch_totals(self, batches: list[list[int]]) -> list[list[dict[str, Any]] | None]:
        """Per batch, in batch order, the steering statistics stored with its rows (``None``: none stored)."""
        out: list[list[dict[str, Any]] | None] = []
        for members in batches:
            found = [self.rows[i][PUSH_TOTALS] for i in members if i in self.rows and PUSH_TOTALS in self.rows[i]]
            out.append(found[0] if found else None)
        return out

    def finish(self) -> None:
        """Put the rows in prompt order once every batch is written (they are written in batch order)."""
        if list(self.rows) != sorted(self.rows):
            self.rows = {i: self.rows[i] for i in sorted(self.rows)}
            self._rewrite()

    def append(self, rows: list[dict[str, Any]]) -> int:
        """Append the rows not already stored (one write, fsync'd); return how many were written."""
        new = [r for r in rows if int(r["i"]) not in self.rows]
        if not new:
            return 0
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write("".join(json.dumps(r) + "\n" for r in new))
            fh.flush()
            os.fsync(fh.fileno())
        for r in new:
            self.rows[int(r["i"])] = r
        return len(new)


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        row = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    ok = (
        isinstance(row, dict)
        and isinstance(row.get("i"), int)
        and row["i"] >= 0
        and isinstance(row.get("continuations"), list)
        and all(isinstance(c, str) for c in row["continuations"])
    )
    return row if ok else None
