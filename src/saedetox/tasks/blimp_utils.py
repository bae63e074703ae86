"""lm-eval hook for the saedetox BLiMP task: order the pairs round-robin over paradigms."""

from typing import Any


def process_docs(dataset: Any) -> Any:
    from saedetox.capability import interleave_by_paradigm

    return dataset.select(interleave_by_paradigm(dataset["UID"]))
