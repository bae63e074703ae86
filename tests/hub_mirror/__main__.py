"""Build a mirror on disk, e.g. at real GPT-2 Small shapes for GPU benchmarks (not run in CI).

PYTHONPATH=src:tests python -m hub_mirror DIR --full gpt2,gemma-scope
HF_HUB_CACHE=DIR HF_HUB_OFFLINE=1 saedetox info --model gpt2 --sae gpt2-small-res-jb/blocks.6.hook_resid_pre
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from hub_mirror import DEFAULT_SAES, FULL_PARTS, build_mirror


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cache_dir")
    ap.add_argument("--full", default="", help=f"comma list of parts at real shapes ({','.join(FULL_PARTS)}) or 'all'")
    ap.add_argument("--layout", default="blobs", choices=["blobs", "plain"])
    ap.add_argument("--sae", action="append", help="release/sae_id to mirror (repeatable; default: the paper's)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    full: bool | list[str] = True if args.full == "all" else [p for p in args.full.split(",") if p]
    m = build_mirror(args.cache_dir, full=full, layout=args.layout, saes=args.sae or DEFAULT_SAES)
    print(json.dumps(m.timings, indent=1))
    print(f"built in {time.perf_counter() - t0:.1f}s, {m.size_bytes() / 1e6:.1f} MB at {m.cache_dir}")
    print(f"use: HF_HUB_CACHE={m.cache_dir} HF_HUB_OFFLINE=1")
    return 0


if __name__ == "__main__":
    sys.exit(main())
