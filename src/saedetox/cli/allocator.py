"""Keep large tensor buffers in the process heap (glibc): the command line's CPU work allocates them at every step.

glibc serves every allocation above ``M_MMAP_THRESHOLD`` (at most 32 MB by its own adjustment)
with a fresh ``mmap`` and gives it back on free, so each step that makes a large tensor (a batch's
logits, an MLP's hidden state) pays the page faults of new memory again: on the 2-core reference
CPU a ReLU over a 32 MB tensor took 22 ms, 4 ms with the buffer reused (BENCHMARKS.md). Raising
the mmap and trim thresholds to 1 GiB keeps freed buffers for reuse. Nothing numeric changes;
the resident set may stay higher after a peak. Only the command line calls this (a library
should not change its host's allocator); ``SAEDETOX_MALLOC=default`` leaves glibc as it is, and
other C libraries are left alone.
"""

from __future__ import annotations

import ctypes
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
KEEP_BYTES = 1 << 30


def keep_large_buffers() -> bool:
    """Raise glibc's mmap/trim thresholds to :data:`KEEP_BYTES`; ``True`` when both were set."""
    if os.environ.get("SAEDETOX_MALLOC", "").lower() == "default" or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own symbols: libc is loaded (no ldconfig lookup)
    except (OSError, AttributeError):  # a libc without mallopt (musl): leave it
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_TRIM_THRESHOLD, KEEP_BYTES)) and bool(mallopt(_M_MMAP_THRESHOLD, KEEP_BYTES))
