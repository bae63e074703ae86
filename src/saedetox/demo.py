"""``saedetox demo``: the whole pipeline on the committed reference world, offline.

Until the reference world is committed, it exercises the steering engine on a tiny
random-weight model instead, and says so.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from saedetox.io import atomic_write_json
from saedetox.model.load import reference_model_dir


def engine_demo(out: Path) -> dict[str, Any]:
    """Steer a tiny random GPT-2 in every mode and check cached = uncached generation."""
    import tempfile

    import sae_lens
    from transformers import GPT2Config, GPT2LMHeadModel

    from saedetox.data.calibration import CALIBRATION_TEXTS
    from saedetox.model.load import wrap_model
    from saedetox.model.tokens import tokenize_batch
    from saedetox.steering.spec import MODES, Intervention, SteeringSpec
    from saedetox.steering.steerer import Steerer
    from saedetox.train.lm import train_tokenizer

    tok = train_tokenizer(list(CALIBRATION_TEXTS), 300)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=128, n_embd=64, n_layer=2, n_head=4))
    lm = wrap_model(model.eval(), tok, "tiny-random-gpt2")
    cfg = sae_lens.StandardSAEConfig(d_in=64, d_sae=256)
    cfg.metadata.hook_name = "blocks.1.hook_resid_pre"
    sae = sae_lens.StandardSAE(cfg)
    results: dict[str, Any] = {"note": "reference world not committed yet: engine demo on a tiny random model"}
    with tempfile.TemporaryDirectory() as tmp:
        sae.save_model(tmp)
        enc = tokenize_batch(tok, list(CALIBRATION_TEXTS[:4]), padding_side="left")
        for mode in MODES:
            spec = SteeringSpec([Intervention(sae=tmp, latents=[0, 1, 2], mode=mode, tier="medium")])
            seqs = []
            for cache in (True, False):
                with Steerer(lm, spec) as st, st.prompt_length(enc["input_ids"].shape[1]), torch.no_grad():
                    seqs.append(
                        lm.model.generate(
                            **enc, max_new_tokens=8, do_sample=False, use_cache=cache, pad_token_id=tok.pad_token_id
                        )
                    )
            results[mode] = {"cached_equals_uncached": bool(torch.equal(seqs[0], seqs[1]))}
    return results


def run_demo(out: str | Path) -> dict[str, Any]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if not (reference_model_dir() / "config.json").exists():
        res = engine_demo(out)
        atomic_write_json(out / "metrics.json", res)
        print(json.dumps(res, indent=2))
        return res
    from importlib.resources import files

    from saedetox.sweep import load_config, run_sweep

    path = Path(str(files("saedetox") / "configs" / "demo.yaml"))
    t0 = time.time()
    results = run_sweep(load_config(path), out)
    for name, res in results.items():
        tox = ", ".join(f"{j} {t['tox_prob']:.2f}" for j, t in res["toxicity"].items())
        print(f"{name:24s} tox_prob: {tox}  cond PPL {res['fluency']['ppl_conditional']:.2f}")
    print(f"demo finished in {time.time() - t0:.0f} s; report: {out / 'report.html'}")
    return results
