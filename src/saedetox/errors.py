"""User-facing errors: one clear line naming the problem and the fix."""

from __future__ import annotations


class SaedetoxError(Exception):
    """An error caused by the user's input or environment.

    The CLI prints ``str(error)`` as a single line and exits non-zero, never a traceback.
    """

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))
