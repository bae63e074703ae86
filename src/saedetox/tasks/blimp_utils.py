"""lm-eval hook for the saedetox BLiMP task: order the pairs round-robin over paradigms."""

from typing import Any

from saedetox.eval.metrics.capability import interleave_by_paradigm


def process_docs(dataset: Any) -> Any:
    # the column as one Arrow read: indexing ``dataset["UID"]`` formats every row in Python (seconds per run)
    uids = dataset.with_format("arrow")["UID"].to_pylist()
    return dataset.select(interleave_by_paradigm(uids))
