"""``saedetox demo``: the whole pipeline on the committed reference world, offline (``configs/demo.yaml``)."""

from __future__ import annotations

import time
from importlib.resources import files
from pathlib import Path
from typing import Any

from saedetox.experiments.config import load_config
from saedetox.experiments.sweep import run_sweep


def run_demo(out: str | Path, overwrite: bool = False) -> dict[str, Any]:
    out = Path(out)
    path = Path(str(files("saedetox") / "configs" / "demo.yaml"))
    t0 = time.time()
    results = run_sweep(load_config(path), out, overwrite=overwrite)
    for name, res in results.items():
        tox = ", ".join(
            f"{j} {'n/a' if t['tox_prob'] is None else format(t['tox_prob'], '.2f')}"
            for j, t in res["toxicity"].items()
        )
        ppl = res["fluency"]["ppl_conditional"]
        print(f"{name:24s} tox_prob: {tox}  cond PPL {'n/a' if ppl is None else format(ppl, '.2f')}")
    print(f"demo finished in {time.time() - t0:.0f} s; report: {out / 'report.html'}")
    return results
