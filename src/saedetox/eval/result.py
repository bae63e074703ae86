"""What :func:`saedetox.evaluate` returns: the run's ``metrics.json`` object with typed access."""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from saedetox.errors import SaedetoxError
from saedetox.eval.runs.runfolder import METRICS


@dataclass(frozen=True)
class Toxicity:
    """One judge's toxicity numbers (``docs/metrics.md``): 95% bootstrap CIs over prompts."""

    judge: str
    tox_prob: float | None  # share of prompts with at least one continuation scored ≥ threshold
    tox_prob_ci: tuple[float, float] | None
    emt: float | None  # expected maximum toxicity over the k continuations of a prompt
    emt_ci: tuple[float, float] | None
    mean: float | None  # mean score over every continuation
    n_prompts: int


def _ci(value: Any) -> tuple[float, float] | None:
    return (float(value[0]), float(value[1])) if isinstance(value, (list, tuple)) and len(value) == 2 else None


def dig(d: Any, *path: str) -> Any:
    """``d[p0][p1]...``, or ``None`` when a step is missing or not a mapping (metrics files may lack any key)."""
    for p in path:
        if not isinstance(d, Mapping) or p not in d:
            return None
        d = d[p]
    return d


def section(d: Any, key: str) -> dict[str, Any]:
    """``d[key]`` as a dict when it is a mapping, else ``{}``."""
    v = dig(d, key)
    return dict(v) if isinstance(v, Mapping) else {}


def _finite(x: Any) -> float | None:
    """A finite real number as float, else ``None`` (bools, strings, NaN and ∞ are missing)."""
    if isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(float(x)):
        return float(x)
    return None


class RunResult(dict[str, Any]):
    """A run's metrics: the ``metrics.json`` mapping itself (every key, ``res["toxicity"]``), plus typed access.

    ``res.toxicity("probe").tox_prob``, ``res.ppl``, ``res.dist2``, ``res.effective_push``,
    ``res.path``; :meth:`load` reads a finished run folder. Keys: ``docs/metrics.md``. Any key may be
    missing (older files, partial runs): the accessors below then return ``None`` (or an empty dict),
    except :meth:`toxicity`, which names what is missing.
    """

    def __init__(self, metrics: dict[str, Any], path: str | Path | None = None) -> None:
        super().__init__(metrics)
        self.path = Path(path) if path is not None else None

    @classmethod
    def load(cls, run: str | Path) -> RunResult:
        """The result of a finished run folder (its ``metrics.json``)."""
        p = Path(run)
        file = p / METRICS if p.is_dir() else p
        if not file.is_file():
            raise SaedetoxError(f"{p} holds no finished run ({METRICS} is missing).")
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise SaedetoxError(f"{file} is not valid JSON.") from None
        if not isinstance(data, dict):
            raise SaedetoxError(f"{file} is not a run's metrics object.")
        return cls(data, file.parent)

    @classmethod
    def of(cls, metrics: Mapping[str, Any]) -> RunResult:
        """``metrics`` itself when it is a RunResult, else a RunResult over a copy of the mapping."""
        return metrics if isinstance(metrics, RunResult) else cls(dict(metrics))

    @property
    def judges(self) -> list[str]:
        """The judges that scored this run, in the order they were given."""
        return list(section(self, "toxicity"))

    def toxicity(self, judge: str | None = None) -> Toxicity:
        """One judge's numbers (default: the first judge)."""
        table = self.get("toxicity") or {}
        if not table:
            raise SaedetoxError("This run has no toxicity numbers.")
        name = judge if judge is not None else next(iter(table))
        if name not in table:
            raise SaedetoxError(f"No judge '{name}' in this run: it has {', '.join(table)}.")
        t = table[name]
        return Toxicity(
            name,
            t.get("tox_prob"),
            _ci(t.get("tox_prob_ci")),
            t.get("emt"),
            _ci(t.get("emt_ci")),
            t.get("mean"),
            int(t.get("n_prompts") or 0),
        )

    def toxicity_value(self, judge: str, key: str, split: str | None = None) -> Any:
        """``toxicity[judge][key]`` as stored, or within ``by_prompt_toxicity[split]``; ``None`` when missing."""
        if split is None:
            return dig(self, "toxicity", judge, key)
        return dig(self, "toxicity", judge, "by_prompt_toxicity", split, key)

    @property
    def tox_prob(self) -> float | None:
        """Toxicity probability by the first judge."""
        return self.toxicity().tox_prob

    @property
    def emt(self) -> float | None:
        """Expected maximum toxicity by the first judge."""
        return self.toxicity().emt

    @property
    def ppl(self) -> float | None:
        """Conditional perplexity of the continuations under the reference LM (``None`` when undefined)."""
        return dig(self, "fluency", "ppl_conditional")

    @property
    def ppl_ci(self) -> Any:
        """The 95% CI of :attr:`ppl` as stored (``[lo, hi]``), or ``None``."""
        return dig(self, "fluency", "ppl_ci")

    @property
    def ppl_clean(self) -> float | None:
        """Perplexity of the (steered) model on held-out clean text, if measured."""
        return dig(self, "fluency", "ppl_clean")

    @property
    def dist1(self) -> float | None:
        """Distinct unigrams per continuation set (DExperts' dist-1)."""
        return dig(self, "diversity", "dist1")

    @property
    def dist2(self) -> float | None:
        """Distinct bigrams per continuation set (DExperts' dist-2)."""
        return dig(self, "diversity", "dist2")

    @property
    def dist3(self) -> float | None:
        """Distinct trigrams per continuation set (DExperts' dist-3)."""
        return dig(self, "diversity", "dist3")

    @property
    def capability(self) -> dict[str, float]:
        """Benchmark accuracies (``{task: acc}``); perplexity-type numbers are in ``res["capability_ppl"]``."""
        return section(self, "capability")

    @property
    def capability_ppl(self) -> dict[str, float]:
        """Perplexity-type benchmark numbers (``{task: ppl}``)."""
        return section(self, "capability_ppl")

    @property
    def judge_agreement(self) -> dict[str, Any]:
        """Agreement between judges per pair (``"a~b"``: pearson, spearman, cohen_kappa, n)."""
        return section(self, "judge_agreement")

    @property
    def samples_per_prompt(self) -> int | None:
        """k, the continuations per prompt: ``samples_per_prompt``, else ``config.sampling.n_samples``."""
        k = _finite(self.get("samples_per_prompt"))
        if k is None:
            k = _finite(dig(self, "config", "sampling", "n_samples"))
        return None if k is None else int(k)

    @property
    def wall_seconds(self) -> float | None:
        """How long the run took, in seconds."""
        return dig(self, "wall_seconds")

    @property
    def effective_push(self) -> float | None:
        """Mean ‖Δx‖ / median residual norm over generated positions (steering methods only)."""
        return dig(self, "steering", "effective_push")

    @property
    def config(self) -> dict[str, Any]:
        """What was run: method, its settings, model, prompts, sampling, judges."""
        return section(self, "config")

    def config_value(self, key: str) -> Any:
        """``config[key]`` as stored, or ``None``."""
        return dig(self, "config", key)

    def __repr__(self) -> str:
        parts = [f"run={self.config.get('run')!r}", f"method={self.config.get('method')!r}"]
        if self.judges:
            t = self.toxicity()
            parts.append(f"{t.judge}: tox_prob={t.tox_prob}, emt={t.emt}")
        parts.append(f"ppl={self.ppl}")
        return f"RunResult({', '.join(parts)})"
