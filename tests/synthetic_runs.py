"""Synthetic run metrics with ``per_prompt`` blocks, for the paired-statistics and report tests.

Every run scores the same prompts with common random numbers (one uniform per prompt and sample,
shared by all runs), as the sweep's runs do, so runs are positively correlated prompt by prompt.
A run at strength ``s`` of a method with efficacy ``a`` makes sample j of prompt i toxic when
``U[i, j] < base[i] · exp(−a · s)``; its log PPL is ``lp[i] + cost · s + noise``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

JUDGE = "probe"


class World:
    """Prompts (uids, toxicity propensity, base log PPL) and the shared uniforms."""

    def __init__(self, n: int = 200, k: int = 5, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.n, self.k = n, k
        self.uid = [f"rtp-{i:05d}" for i in range(n)]
        self.base = rng.beta(2, 3, n)
        self.lp = rng.normal(3.0, 0.4, n)
        self.u = rng.random((n, k))
        self.noise_rng = np.random.default_rng(seed + 1)

    def run(
        self,
        method: str,
        *,
        strength: float = 0.0,
        efficacy: float = 3.0,
        cost: float = 0.4,
        mode: str | None = None,
        curve: str | None | type = ...,
        level: float | None = None,
        push: float | None = None,
        order: list[int] | None = None,
    ) -> dict[str, Any]:
        """A metrics dict; ``curve=...`` leaves ``config.curve`` out (old metrics), ``order`` permutes prompts."""
        scores = self.u.copy()
        p = self.base * math.exp(-efficacy * strength)
        # score ≥ 0.5 exactly when U < p: map U to a score monotonically
        scores = np.where(self.u < p[:, None], 0.5 + 0.5 * (1 - self.u / np.maximum(p[:, None], 1e-9)), 0.49 * self.u)
        log_ppl = self.lp + cost * strength + self.noise_rng.normal(0, 0.05, self.n)
        idx = list(range(self.n)) if order is None else order
        max_tox = scores.max(axis=1)
        n_toxic = (scores >= 0.5).sum(axis=1)
        cfg: dict[str, Any] = {"method": method, "mode": mode, "alpha": strength or None, "model": "synthetic"}
        if curve is not ...:
            cfg["curve"] = curve
            cfg["level"] = level
        m: dict[str, Any] = {
            "config": cfg,
            "n_prompts": self.n,
            "samples_per_prompt": self.k,
            "toxicity": {
                JUDGE: {
                    "tox_prob": float((max_tox >= 0.5).mean()),
                    "emt": float(max_tox.mean()),
                    "tox_prob_ci": [0.0, 1.0],
                }
            },
            "fluency": {"ppl_conditional": float(np.exp(log_ppl).mean())},
            "per_prompt": {
                "uid": [self.uid[i] for i in idx],
                "max_tox": {JUDGE: [round(float(max_tox[i]), 5) for i in idx]},
                "n_toxic": {JUDGE: [int(n_toxic[i]) for i in idx]},
                "log_ppl": [round(float(log_ppl[i]), 5) for i in idx],
            },
        }
        if push is not None:
            m["steering"] = {"effective_push": push, "interventions": []}
        return m


def sweep(world: World | None = None, *, with_curve_keys: bool = True) -> dict[str, dict[str, Any]]:
    """A small sweep: none, prompt, aura, meandiff and two SAE curves (the first SAE curve is stronger)."""
    w = world or World()
    kw = (lambda c, lv: {"curve": c, "level": lv}) if with_curve_keys else (lambda c, lv: {})
    runs = {"none": w.run("none", **({"curve": None} if with_curve_keys else {}))}
    runs["prompt"] = w.run("prompt", strength=0.05, cost=0.2, **({"curve": None} if with_curve_keys else {}))
    runs["aura"] = w.run("aura", strength=0.2, efficacy=1.0, **({"curve": None} if with_curve_keys else {}))
    for s in (0.1, 0.2, 0.4, 0.8):
        runs[f"meandiff-n{s:g}"] = w.run(
            "meandiff", strength=s, efficacy=2.0, mode="constant", push=s, **kw("meandiff-constant", s)
        )
        runs[f"sae-adaptive-n{s:g}"] = w.run(
            "sae", strength=s, efficacy=4.0, mode="adaptive", push=s * 0.9, **kw("sae-adaptive", s)
        )
        runs[f"sae-constant-n{s:g}"] = w.run(
            "sae", strength=s, efficacy=2.5, mode="constant", push=s, **kw("sae-constant", s)
        )
    return runs
