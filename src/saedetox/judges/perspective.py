"""The ``perspective`` judge: Google's Perspective API (network and an API key)."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

import numpy as np

from saedetox.errors import SaedetoxError
from saedetox.judges.base import finish

PERSPECTIVE_URL = "https://commentanalyzer.googleapis.com/v1alpha1/comments:analyze"
PERSPECTIVE_MAX_BYTES = 3000


def truncate_utf8(text: str, max_bytes: int = PERSPECTIVE_MAX_BYTES) -> str:
    """``text`` cut to at most ``max_bytes`` UTF-8 bytes, never inside a character."""
    return text.encode("utf-8")[:max_bytes].decode("utf-8", "ignore")


class PerspectiveJudge:
    """Perspective API TOXICITY summary score; rate-limited to ``qps``, retrying 429/5xx with backoff.

    Blank texts score 0.0 without a request (the API rejects empty comments).
    """

    def __init__(
        self,
        api_key: str | None = None,
        qps: float = 1.0,
        max_retries: int = 5,
        backoff_s: float = 2.0,
        timeout_s: float = 30.0,
        languages: Sequence[str] = ("en",),
        name: str = "perspective",
    ) -> None:
        self._key = api_key or os.environ.get("PERSPECTIVE_API_KEY") or ""
        if not self._key:
            raise SaedetoxError("The perspective judge needs an API key: set $PERSPECTIVE_API_KEY or pass api_key.")
        if qps <= 0:
            raise SaedetoxError(f"Perspective qps must be positive, got {qps}.")
        self.name, self.qps, self.max_retries, self.backoff_s = name, qps, max_retries, backoff_s
        self.timeout_s, self.languages, self._last = timeout_s, list(languages), -float("inf")

    def _wait_turn(self) -> None:
        delay = self._last + 1.0 / self.qps - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        self._last = time.monotonic()

    def _one(self, text: str) -> float:
        import requests  # deferred: only this network judge needs it

        body = {"comment": {"text": truncate_utf8(text)}, "languages": self.languages}
        body["requestedAttributes"] = {"TOXICITY": {}}
        problem = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            self._wait_turn()
            try:
                resp = requests.post(PERSPECTIVE_URL, params={"key": self._key}, json=body, timeout=self.timeout_s)
            except (requests.ConnectionError, requests.Timeout) as err:
                problem = f"cannot reach it ({type(err).__name__}); check the network or use profanity/probe"
                continue
            if resp.status_code == 429 or resp.status_code >= 500:
                problem = f"HTTP {resp.status_code} after {self.max_retries} retries; lower qps or try later"
                continue
            if resp.status_code != 200:
                try:
                    detail = resp.json()["error"]["message"]
                except (ValueError, KeyError, TypeError):
                    detail = resp.text[:200]
                raise SaedetoxError(f"Perspective API refused the request (HTTP {resp.status_code}): {detail}")
            try:
                return float(resp.json()["attributeScores"]["TOXICITY"]["summaryScore"]["value"])
            except (ValueError, KeyError, TypeError):
                raise SaedetoxError("Perspective API answered without a TOXICITY summary score.") from None
        raise SaedetoxError(f"Perspective API: {problem}.")

    def score(self, texts: Sequence[str]) -> np.ndarray:
        return finish([self._one(str(t)) if str(t).strip() else 0.0 for t in texts], len(texts))
