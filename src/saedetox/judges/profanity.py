"""The ``profanity`` judge: alt-profanity-check's linear SVM on word n-grams (offline)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from profanity_check import predict_prob

from saedetox.judges.base import batches, finish


class ProfanityJudge:
    """alt-profanity-check's ``predict_prob``."""

    def __init__(self, batch_size: int = 4096, name: str = "profanity") -> None:
        self.name, self.batch_size, self._predict = name, batch_size, predict_prob

    def score(self, texts: Sequence[str]) -> np.ndarray:
        out = [p for batch in batches(texts, self.batch_size) for p in self._predict(batch)]
        return finish(out, len(texts))
