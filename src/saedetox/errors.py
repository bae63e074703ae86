"""User-facing errors: one clear line naming the problem and the fix."""

from __future__ import annotations


class SaedetoxError(Exception):
    """An error caused by the user's input or environment.

    The CLI prints ``str(error)`` as a single line and exits non-zero, never a traceback.
    """

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


class StaleRunError(SaedetoxError):
    """An output folder holds results made with other settings: ``diffs`` names each (``key=old, now new``).

    ``hint`` says how to replace them, in the caller's terms (the API's ``overwrite=True``, the CLI's
    ``--overwrite``); :meth:`with_hint` rephrases it.
    """

    def __init__(self, folder: str, diffs: list[str], hint: str = "pass overwrite=True or use another folder") -> None:
        self.folder, self.diffs, self.hint = folder, list(diffs), hint
        shown = "; ".join(self.diffs[:4]) + (f"; and {len(self.diffs) - 4} more" if len(self.diffs) > 4 else "")
        super().__init__(f"{folder} was run with {shown or 'other settings'}; {hint}.")

    def with_hint(self, hint: str) -> StaleRunError:
        return StaleRunError(self.folder, self.diffs, hint)

    def __reduce__(self) -> tuple[type, tuple[str, list[str], str]]:
        """Rebuilt from its parts, so it crosses a process boundary (a sweep's workers) intact."""
        return type(self), (self.folder, self.diffs, self.hint)
