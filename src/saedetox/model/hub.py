"""What a failed Hugging Face hub lookup means, said in one line: a file missing from the local cache, or no network.

``huggingface_hub`` reads ``HF_HUB_OFFLINE`` and ``HF_HUB_CACHE`` once, at import, into
``huggingface_hub.constants``; the functions here read those constants at call time, as the
hub client does, so they agree with what the failed lookup saw.
"""

from __future__ import annotations

import re

from huggingface_hub import constants as hf_constants

# "Cannot reach https://huggingface.co/ORG/NAME/resolve/REVISION/PATH: offline mode is enabled."
_RESOLVE_URL = re.compile(r"https?://[^/\s]+/(?P<repo>\S+?)/resolve/[^/\s]+/(?P<file>[^\s:]+)")


def offline() -> bool:
    """Whether the hub client is in offline mode (``HF_HUB_OFFLINE=1``)."""
    return bool(hf_constants.is_offline_mode())


def cache_dir() -> str:
    """The hub cache the client resolves files in."""
    return str(hf_constants.HF_HUB_CACHE)


def error_chain(err: BaseException) -> list[BaseException]:
    """``err`` and the exceptions it was raised from (``__cause__``, else ``__context__``), outermost first."""
    chain: list[BaseException] = []
    current: BaseException | None = err
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def missing_file(err: BaseException) -> tuple[str, str] | None:
    """``(repo, path)`` of the hub file a failed lookup asked for, read from the URL in the error chain."""
    for e in error_chain(err):
        match = _RESOLVE_URL.search(str(e))
        if match:
            return match["repo"], match["file"]
    return None


def not_in_cache(err: BaseException) -> str | None:
    """The name of the hub client's "no local copy" error in the chain (``LocalEntryNotFoundError``), if any."""
    for e in error_chain(err):
        if type(e).__name__ == "LocalEntryNotFoundError":
            return type(e).__name__
    return None
