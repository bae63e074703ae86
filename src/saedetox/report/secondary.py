"""A secondary question: chosen runs again on another prompt set, compared in pairs by prompt.

A sweep's ``secondary:`` section (:class:`SecondaryConfig`, fixed in the config before the run)
names a prompt set (``prompts``, ``n_prompts``), the runs evaluated on it (runs of the sweep, or
strength curves, each standing for its level whose clean PPL ratio to the unsteered run on the
sweep's own prompts is closest to ``ppl_ratio``, chosen before any run on the set starts) and the
pairs compared. On the set, per run: toxicity probability and EMT (judge ``judge``, k samples per
prompt) and conditional PPL with its paired ratio to the set's unsteered run (when the section
names one). Per pair ``(a, b)``: the paired differences a − b of toxicity probability, EMT and
log PPL with BCa CIs and bootstrap p-values (the intervals' test inversion), and the paired PPL ratio a / b
(:func:`~saedetox.eval.metrics.paired.compare_runs`). The answer per pair: ``a less toxic`` when the
toxicity difference's CI lies below zero, ``a more toxic`` above, else ``no difference shown``.
The report labels it a secondary question: it never changes the primary answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from saedetox.errors import SaedetoxError
from saedetox.eval.metrics.paired import compare_runs
from saedetox.eval.result import RunResult
from saedetox.report.format import fmt_interval as _ci
from saedetox.report.format import fmt_signed as _f
from saedetox.report.format import k_note
from saedetox.report.robustness import METRICS, ppl_ratio

VERDICTS = ("a less toxic", "a more toxic", "no difference shown")


@dataclass
class SecondaryConfig:
    """A sweep's ``secondary:`` section (see the module docstring)."""

    question: str = ""  # the question in words, as fixed before the run
    prompts: str = "mixed:test"
    n_prompts: int = 150
    runs: list[str] = field(default_factory=list)
    pairs: list[list[str]] = field(default_factory=list)
    ppl_ratio: float | None = None
    judge: str | None = None
    metric: str = "tox_prob"
    n_boot: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.question, str):
            raise SaedetoxError("secondary.question must be text.")
        if not isinstance(self.prompts, str) or not self.prompts:
            raise SaedetoxError("secondary.prompts must name a prompt set (e.g. mixed:test).")
        n = self.n_prompts
        if isinstance(n, bool) or not isinstance(n, int) or n < 2:
            raise SaedetoxError(f"secondary.n_prompts must be a whole number ≥ 2, got {n!r}.")
        if not isinstance(self.runs, list) or not self.runs or not all(isinstance(r, str) for r in self.runs):
            raise SaedetoxError("secondary.runs must be a non-empty list of run or curve names.")
        if len(set(self.runs)) != len(self.runs):
            raise SaedetoxError("secondary.runs names a run twice.")
        ok = isinstance(self.pairs, list) and self.pairs
        if not ok or not all(isinstance(p, list) and len(p) == 2 and p[0] != p[1] for p in self.pairs):
            raise SaedetoxError("secondary.pairs must be a non-empty list of [a, b] pairs of two different runs.")
        for a, b in self.pairs:
            for x in (a, b):
                if x not in self.runs:
                    raise SaedetoxError(f"secondary.pairs names {x!r}, which is not in secondary.runs.")
        if self.metric not in METRICS:
            raise SaedetoxError(f"secondary.metric must be one of {', '.join(METRICS)}, got {self.metric!r}.")
        if self.judge is not None and not isinstance(self.judge, str):
            raise SaedetoxError("secondary.judge must be a name.")
        r = self.ppl_ratio
        if r is not None and (isinstance(r, bool) or not isinstance(r, (int, float)) or r < 1):
            raise SaedetoxError(f"secondary.ppl_ratio must be a number ≥ 1, got {r!r}.")
        for key, least in (("n_boot", 100), ("seed", 0)):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < least:
                raise SaedetoxError(f"secondary.{key} must be a whole number ≥ {least}, got {v!r}.")


def _verdict(ci: list[float | None]) -> str:
    lo, hi = ci
    if hi is not None and hi < 0:
        return VERDICTS[0]
    if lo is not None and lo > 0:
        return VERDICTS[1]
    return VERDICTS[2]


def secondary(
    results: Mapping[str, Mapping[str, Any]],
    cfg: SecondaryConfig,
    judge: str,
    chosen: Mapping[str, str] | None = None,
    origin: str | None = None,
) -> dict[str, Any]:
    """The comparison on the prompt set: ``results`` is ``{run: metrics}`` of the runs on the set.

    ``chosen`` maps each entry of ``cfg.runs`` (a run or a curve) to the run standing for it
    (default: itself); ``origin`` names the set's unsteered run, the origin of the PPL ratios.
    """
    chosen = dict(chosen or {e: e for e in cfg.runs})
    missing = [chosen.get(e, e) for e in cfg.runs if chosen.get(e, e) not in results]
    if missing:
        raise SaedetoxError(f"The secondary question lacks run(s) on {cfg.prompts}: {', '.join(missing)}.")
    k = None
    rows = {}
    for e in cfg.runs:
        name = chosen[e]
        k = RunResult.of(results[name]).samples_per_prompt if k is None else k
        tox = (results[name].get("toxicity") or {}).get(judge) or {}
        rows[name] = {
            "entry": e,
            "tox_prob": tox.get("tox_prob"),
            "emt": tox.get("emt"),
            "ppl": (results[name].get("fluency") or {}).get("ppl_conditional"),
            "ppl_ratio": ppl_ratio(results[origin], results[name]) if origin in results else None,
        }
    pairs = []
    for a, b in cfg.pairs:
        ra, rb = chosen[a], chosen[b]
        cmp = compare_runs(
            results[ra], results[rb], judge=judge, names=(ra, rb), n_boot=cfg.n_boot, seed=cfg.seed, p_kind="bootstrap"
        )
        diff = {d["metric"]: d for d in cmp["differences"]}
        tox = diff[cfg.metric]
        pairs.append(
            {
                "a": ra,
                "b": rb,
                "metric": cfg.metric,
                "a_value": tox["a"],
                "b_value": tox["b"],
                "diff": tox["diff"],
                "ci": list(tox["ci"]),
                "p": tox["p"],
                "n": tox["n"],
                "ppl_ratio": cmp["ppl_ratio"]["est"],
                "ppl_ratio_ci": cmp["ppl_ratio"]["ci"],
                "answer": _verdict(list(tox["ci"])),
            }
        )
    return {
        "question": cfg.question,
        "prompts": cfg.prompts,
        "n_prompts": cfg.n_prompts,
        "judge": judge,
        "metric": cfg.metric,
        "k": k,
        "n_boot": cfg.n_boot,
        "origin": origin if origin in results else None,
        "chosen": chosen,
        "runs": rows,
        "pairs": pairs,
    }


def what(res: Mapping[str, Any]) -> str:
    """The compared quantity in words, with its judge and k."""
    name = "toxicity probability" if res["metric"] == "tox_prob" else "EMT"
    return f"{name} (judge {res['judge']}, k = {res['k']} samples per prompt)"


def secondary_markdown(res: Mapping[str, Any]) -> str:
    """The report's secondary-question section (Markdown)."""
    lines = [
        "## Secondary question (pre-registered, not the primary answer)",
        "",
        *([res["question"], ""] if res["question"] else []),
        f"On {res['prompts']} ({res['n_prompts']} prompts), {what(res)}; differences a − b paired by prompt, "
        f"BCa 95% CIs over prompts ({res['n_boot']} resamples), "
        "p the bootstrap p (the BCa interval's test inversion: the CI excludes 0 exactly when p < 0.05).",
        "",
        "| a − b | a | b | difference | 95% CI | p | PPL ratio a / b | 95% CI | answer |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for p in res["pairs"]:
        lines.append(
            f"| {p['a']} − {p['b']} | {_f(p['a_value'])} | {_f(p['b_value'])} | {_f(p['diff'], sign=True)} | "
            f"{_ci(p['ci'])} | {_f(p['p'])} | {_f(p['ppl_ratio'])} | {_ci(p['ppl_ratio_ci'], sign=False)} | "
            f"{p['answer']} |"
        )
    origin = res["origin"] or "–"
    lines += ["", f"| run | stands for | toxicity probability | EMT | PPL | PPL ratio to {origin} |"]
    lines.append("| --- | --- | --- | --- | --- | --- |")
    for name, r in res["runs"].items():
        lines.append(
            f"| {name} | {r['entry']} | {_f(r['tox_prob'])} | {_f(r['emt'])} | {_f(r['ppl'], 2)} | "
            f"{_f(r['ppl_ratio'])} |"
        )
    note = k_note(res["k"])
    return "\n".join(lines + ([""] + [note] if note else []) + [""])
