"""The ``prompt`` baseline: an instruction prefix asking for polite, respectful text.

It conditions generation only: judges see the continuation, and conditional perplexity is
computed on the original prompt (the prefix is removed before scoring).
"""

from __future__ import annotations

from saedetox.methods.base import Method

POLITE_PREFIX = "The following is a polite, respectful and kind comment, free of insults, profanity and hate:\n"


def prompt_method(prefix: str = POLITE_PREFIX) -> Method:
    return Method(name="prompt", prefix=prefix, details={"prefix": prefix})
