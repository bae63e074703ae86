"""The feature-splitting study: same discovery and steering budget across SAE widths.

For each SAE of one hook (increasing width) the sweep's discovery selects latents the same
way, the same mode and tier steer them, and the run is evaluated as any other. Two outcomes
per width: the toxicity cut and fluency cost relative to ``none``, and how many latents
orthogonal matching pursuit needs to cover a fixed share (``coverage``) of the toxic
mean-difference direction's squared norm — a measure of how spread the concept is. The direction
is taken in the space the SAE's decoder writes to: centred for centred (TransformerLens
convention) SAEs, whose decoder rows reconstruct mean-free activations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from saedetox.discover.features import read_features, write_features
from saedetox.eval.config import EvalConfig
from saedetox.eval.run import evaluate
from saedetox.experiments.config import SplittingCfg, SweepConfig
from saedetox.experiments.features import run_discovery
from saedetox.io import atomic_write_json
from saedetox.methods.contrast import default_contrast
from saedetox.methods.meandiff import meandiff_direction
from saedetox.methods.registry import STEERED, build_method
from saedetox.model.load import LoadedModel
from saedetox.sae.load import load_sae
from saedetox.sae.loaded import LoadedSAE
from saedetox.steering.spec import Intervention, SteeringSpec
from saedetox.steering.steer import steering_spec


@torch.no_grad()
def latents_for_coverage(directions: torch.Tensor, target: torch.Tensor, coverage: float = 0.8, cap: int = 1024) -> int:
    """OMP: fewest unit decoder directions whose span holds ``coverage`` of ‖target‖²; ``cap`` if never."""
    # scores in float32 (one copy of the decoder, not two in float64: 262k x 2304 is 2.4 GB, not 9.7 GB);
    # the basis and residual in float64
    d = directions.float()
    d = d / d.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    v = target.double() / target.double().norm()
    chosen: list[int] = []
    basis = torch.zeros(0, v.shape[0], dtype=torch.float64)
    residual = v.clone()
    for _ in range(min(cap, d.shape[0])):
        if 1.0 - float(residual @ residual) >= coverage:
            return len(chosen)
        j = int((d @ residual.float()).abs().argmax())
        chosen.append(j)
        dj = d[j].double()
        u = dj - basis.T @ (basis @ dj)
        if float(u.norm()) < 1e-10:
            break
        basis = torch.cat([basis, (u / u.norm()).unsqueeze(0)])
        residual = v - basis.T @ (basis @ v)
    return len(chosen) if 1.0 - float(residual @ residual) >= coverage else cap


@torch.no_grad()
def coverage_count(sae: LoadedSAE, direction: torch.Tensor, coverage: float = 0.8) -> int:
    """OMP latent count for ``direction`` (raw activation space) in the SAE's own input space.

    Centring is linear, so the mean difference of centred activations is the centred mean
    difference: ``sae.prepare(direction)``.
    """
    target = sae.prepare(direction.float().cpu())
    return latents_for_coverage(sae.decoder_rows(torch.arange(sae.d_sae)).detach().float().cpu(), target, coverage)


def _primary(results: dict[str, Any]) -> str:
    first = next(iter(results.values()))
    return next(iter(first["toxicity"]))


def conclusion(rows: list[dict[str, Any]]) -> str:
    """State the trend the data show, whichever way it falls."""
    if len(rows) < 2:
        return "Fewer than two widths: no trend."
    w = np.log2([r["width"] for r in rows])
    cut = np.array([1 - r["tox_prob"] / r["tox_prob_none"] if r["tox_prob_none"] else 0.0 for r in rows])
    cov = np.array([r["latents_for_coverage"] for r in rows], dtype=float)
    slope = float(np.polyfit(w, cut, 1)[0])
    cov_slope = float(np.polyfit(w, cov, 1)[0])
    trend = "weakens" if slope < -0.02 else "strengthens" if slope > 0.02 else "barely changes"
    spread = "more" if cov_slope > 0 else "fewer" if cov_slope < 0 else "the same number of"
    text = (
        f"With the same discovery and steering budget, the toxicity cut {trend} as the SAE widens "
        f"({cut[0]:.0%} at {rows[0]['width']} latents → {cut[-1]:.0%} at {rows[-1]['width']}; "
        f"{slope:+.3f} per doubling), and covering {rows[0]['coverage_target']:.0%} of the toxic mean-difference "
        f"direction takes {spread} latents ({int(cov[0])} → {int(cov[-1])})."
    )
    if all(r.get("ppl") and r.get("ppl_none") for r in rows):
        costs = ", ".join(f"{r['ppl'] / r['ppl_none'] - 1:+.0%}" for r in rows)
        text += f" Conditional-perplexity change by width: {costs}."
    cis = [r.get("tox_prob_ci") for r in rows]
    halves = [(ci[1] - ci[0]) / 2 for ci in cis if ci and None not in ci]  # a degenerate sample has no BCa interval
    if halves:
        text += f" One run per width; toxicity-probability 95% CIs are about ±{float(np.mean(halves)):.2f}."
    return text


def width_intervention(sae: str, feats: dict[str, Any], hook: str | None, sp: SplittingCfg) -> Intervention:
    """One width's intervention: its discovery's latents, the study's mode and tier, the one gate rule."""
    return steering_spec(feats, sae=sae, mode=sp.mode, tier=sp.tier, hook=hook).interventions[0]  # type: ignore[arg-type]


def run_splitting(
    cfg: SweepConfig, lm: LoadedModel, ecfg: EvalConfig, out: Path, results: dict[str, Any], ref: LoadedModel | None
) -> dict[str, Any]:
    """Discovery, steering and evaluation per SAE width (added to ``results``); writes ``DIR/splitting.json``."""
    sp = cfg.splitting
    judge = _primary(results) if results else ecfg.judges[0]
    none = results.get("none")
    rows = []
    contrast = default_contrast(cfg.data_dir, cfg.discovery.max_pairs if cfg.discovery else None)  # as the sweep's
    dirs: dict[str, torch.Tensor] = {}
    for name in sp.saes:
        sae = load_sae(name, lm)
        tag = f"w{sae.d_sae}"
        fpath = out / "splitting" / tag / "features.json"
        main = out / "features.json"  # the main study's discovery, current (resolve_features checked its key)
        if fpath.exists():
            feats = read_features(fpath)
        elif name == cfg.sae and cfg.features is None and cfg.discovery is not None and main.exists():
            feats = read_features(main)  # same SAE, hook, settings and data: the same discovery, not run twice
            write_features(feats, fpath)
        else:
            feats = run_discovery(cfg.discovery, lm, name, cfg.hook, cfg.data_dir)
            write_features(feats, fpath)
        hook = cfg.hook or sae.hook_name
        if hook not in dirs:
            dirs[hook] = meandiff_direction(lm, hook, contrast)
        cover = coverage_count(sae, dirs[hook], sp.coverage)
        row: dict[str, Any] = {
            "width": sae.d_sae,
            "sae": name,
            "mode": sp.mode,
            "tier": sp.tier,
            "latents_for_coverage": cover,
            "coverage_target": sp.coverage,
            "set_test_auroc": feats.get("set_test_auroc"),
            "selected": feats["selected"],
        }
        if feats["selected"]:
            spec = SteeringSpec([width_intervention(name, feats, cfg.hook, sp)]).validate()
            run_name = f"{tag}-sae-{sp.mode}-{sp.tier}"
            res = evaluate(
                lm,
                out / "runs" / run_name,
                ecfg,
                build_method(lm, STEERED, spec),
                run_name=run_name,
                ref_lm=ref,
                data_dir=cfg.data_dir,
            )
            results[run_name] = res
            row.update(
                tox_prob=res["toxicity"][judge]["tox_prob"],
                tox_prob_ci=res["toxicity"][judge].get("tox_prob_ci"),
                ppl=res["fluency"]["ppl_conditional"],
            )
        if none is not None:
            row.update(tox_prob_none=none["toxicity"][judge]["tox_prob"], ppl_none=none["fluency"]["ppl_conditional"])
        rows.append(row)
    rows.sort(key=lambda r: r["width"])
    usable = [r for r in rows if "tox_prob" in r and "tox_prob_none" in r]
    study = {"judge": judge, "rows": rows, "conclusion": conclusion(usable)}
    atomic_write_json(out / "splitting.json", study)
    return study
