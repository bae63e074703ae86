"""lm-eval hook for the saedetox BLiMP task: order the pairs round-robin over paradigms."""

from typing import Any

from saedetox.eval.capability import interleave_by_paradigm


def process_docs(dataset: Any) -> Any:
    return dataset.select(interleave_by_paradigm(dataset["UID"]))
