"""Does the conditional gate select? Its AUROC for a toxic unsteered continuation and its clean false-open rate.

On the reference world (RealToxicityPrompts ``challenging:dev`` only, never ``test``): k unsteered
continuations per prompt are sampled and judged (probe judge, toxic at ≥ 0.5); each features.json
given is then measured with :func:`saedetox.eval.metrics.gate.gate_quality` (prompt +
continuation; clean windows of the ``test`` part, :mod:`saedetox.data.windows`), once with its
own thresholds and, where its ``gate`` record keeps them, with the per-latent clean-sentence
quantile thresholds discovery used before (``quantile_thresholds``). The detector's AUROC
(its largest log-odds over the text) is given beside the gate's.

    PYTHONPATH=src python benchmarks/gate_selectivity.py FEATURES.json [...] --out gate.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import saedetox as sd
from saedetox.data.roles import reference_prompts
from saedetox.discover.features import Features
from saedetox.discover.gate import auroc, detector_window_logits
from saedetox.discover.output_effect import token_acts
from saedetox.eval.metrics.gate import gate_quality
from saedetox.eval.sampler.sampling import sample
from saedetox.judges.registry import get_judge
from saedetox.sae.load import load_sae


def unsteered(lm, prompts: str, k: int, cache: Path) -> dict:
    if cache.is_file():
        return json.loads(cache.read_text())
    ps = reference_prompts(prompts)
    rows = sample(lm, [p.text for p in ps], n_samples=k, max_new_tokens=20, seed=0)
    conts = [[s.text for s in row] for row in rows]
    flat = [c for row in conts for c in row]
    out = {
        "prompts": [p.text for p in ps],
        "conts": conts,
        "scores": {"probe": get_judge("probe").score(flat).tolist()},
    }
    cache.write_text(json.dumps(out))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("features", nargs="+")
    ap.add_argument("--prompts", default="challenging:dev")
    ap.add_argument("--k", type=int, default=2)
    ap.add_argument("--cache", default="unsteered_dev.json")
    ap.add_argument("--out", default="gate_selectivity.json")
    a = ap.parse_args()
    if not a.prompts.endswith(":dev"):
        raise SystemExit("measure on a dev split only (e.g. challenging:dev)")
    lm = sd.load_model("reference")
    gen = unsteered(lm, a.prompts, a.k, Path(a.cache))
    texts = [p + c for p, row in zip(gen["prompts"], gen["conts"], strict=True) for c in row]
    toxic = np.array(gen["scores"]["probe"]) >= 0.5
    result = {"prompts": a.prompts, "k": a.k, "texts": len(texts), "toxic_share": float(toxic.mean()), "sets": {}}
    for path in a.features:
        feats = Features.load(path)
        feats.sae = load_sae(str(feats.sae_name), lm)
        gate = feats.get("gate") or {}
        variants = {"thresholds": feats.thresholds}
        if gate.get("quantile_thresholds"):
            variants["quantile_thresholds"] = gate["quantile_thresholds"]
        row = {}
        for name, th in variants.items():
            f = Features({**feats, "thresholds": th}, sae=feats.sae)
            row[name] = gate_quality(lm, f, texts, toxic.tolist())
        det = feats.detector
        if det is not None:
            acts = token_acts(lm, feats.sae, texts, det["latents"], feats.hook)[0]
            row["detector_auroc"] = auroc(detector_window_logits(det, acts), toxic)
            row["detector_open_rate"] = float((detector_window_logits(det, acts) >= 0).mean())
        row["latents"] = feats.latents
        result["sets"][path] = row
        print(path, json.dumps(row, indent=1))
    Path(a.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
