"""``generations.jsonl``: a run's continuations, appended batch by batch, so a run resumes where it stopped."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from saedetox.io import atomic_write_text


class GenerationLog:
    """``generations.jsonl``: one line per prompt, appended batch by batch, fsync'd; a torn last line is dropped."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: dict[int, dict[str, Any]] = {}
        if path.exists():
            good = []
            lines = path.read_text(encoding="utf-8").splitlines()
            for line in lines:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    break  # a torn last line from an interruption
                self.rows[int(row["i"])] = row
                good.append(line)
            if len(good) < len(lines) or not path.read_text(encoding="utf-8").endswith("\n"):
                atomic_write_text(path, "".join(x + "\n" for x in good))

    def done_batches(self, bounds: list[tuple[int, int]]) -> set[int]:
        return {b for b, (s, e) in enumerate(bounds) if all(i in self.rows for i in range(s, e))}

    def append(self, rows: list[dict[str, Any]]) -> None:
        with self.path.open("a", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row) + "\n")
                self.rows[int(row["i"])] = row
            fh.flush()
            os.fsync(fh.fileno())
