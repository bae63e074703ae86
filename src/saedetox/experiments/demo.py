"""``saedetox demo``: the whole pipeline on the committed reference world, offline (``configs/demo.yaml``).

Beside the sweep's report it writes ``answer.json``: the pre-registered answer, machine-readable,
with the secondary question's result (``secondary.json``) as its ``secondary`` block when the config
asks one.
"""

from __future__ import annotations

import json
import time
from importlib.resources import files
from pathlib import Path
from typing import Any

from saedetox.errors import SaedetoxError
from saedetox.experiments.config import load_config
from saedetox.experiments.sweep import run_sweep
from saedetox.io import atomic_write_json
from saedetox.report.answer import answer_data
from saedetox.report.curves import ComparisonConfig
from saedetox.report.format import judges_of
from saedetox.report.matched import matched_fluency


def write_answer(
    results: dict[str, Any],
    comparison: ComparisonConfig | None,
    path: Path,
    secondary: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The pre-registered answer (the report's first section) as ``answer.json``: one entry per PPL ratio.

    ``secondary`` (a sweep's ``secondary.json``) is kept under the ``secondary`` key, labelled as such.
    """
    cmp = ComparisonConfig.from_mapping(comparison)
    judges = judges_of(results)
    judge = cmp.judge or (judges[0] if judges else None)
    if judge is None:
        data: dict[str, Any] = {"why": "no judge scored these runs"}
    else:
        try:
            data = answer_data(matched_fluency(results, cmp, judge, "none"), comparison is not None)
        except SaedetoxError as err:
            data = {"why": str(err)}
    if secondary is not None:
        data["secondary"] = {"label": "secondary question (pre-registered, not the primary answer)", **secondary}
    atomic_write_json(path, data)
    return data


def run_demo(out: str | Path, overwrite: bool = False) -> dict[str, Any]:
    out = Path(out)
    path = Path(str(files("saedetox") / "configs" / "demo.yaml"))
    t0 = time.time()
    cfg = load_config(path)
    results = run_sweep(cfg, out, overwrite=overwrite)
    sec = out / "secondary.json"
    secondary = json.loads(sec.read_text(encoding="utf-8")) if cfg.secondary is not None and sec.exists() else None
    write_answer(results, cfg.comparison, out / "answer.json", secondary)
    for name, res in results.items():
        tox = ", ".join(
            f"{j} {'n/a' if t['tox_prob'] is None else format(t['tox_prob'], '.2f')}"
            for j, t in res["toxicity"].items()
        )
        ppl = res["fluency"]["ppl_conditional"]
        print(f"{name:24s} tox_prob: {tox}  cond PPL {'n/a' if ppl is None else format(ppl, '.2f')}")
    print(f"demo finished in {time.time() - t0:.0f} s; report: {out / 'report.html'}")
    return results
