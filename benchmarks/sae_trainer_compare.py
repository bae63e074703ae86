"""saedetox's BatchTopK trainer (``train/sae.py``) against SAE-Lens' BatchTopK training SAE + ``SAETrainer``.

At equal tokens, on the same activations of the reference LM, with the same
width, k, batch size, learning rate and schedule (constant, linear decay over the last 20%),
compare held-out explained variance, L0, dead share and CE-loss change (``evaluate_sae_dir``:
the same evaluation for both) and wall time. SAE-Lens keeps its own defaults elsewhere (its
AuxK coefficient and dead window, its threshold rule); both save JumpReLU SAE-Lens folders.

    PYTHONPATH=src python benchmarks/sae_trainer_compare.py --tokens 1000000 --width 1024 --out .work/cmp
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import torch

from saedetox.model.load import load_model
from saedetox.train.sae import SAETrainConfig, activation_stream, corpus_texts, evaluate_sae_dir, train_sae


def batches(lm, cfg: SAETrainConfig, texts: list[str]) -> Iterator[torch.Tensor]:
    """The activations ``train_sae`` trains on (same capture, buffer and shuffling rule), batch by batch."""
    epoch = 0
    while True:
        shuffled = list(texts)
        random.Random(cfg.seed + epoch).shuffle(shuffled)
        chunks, n = [], 0
        for a in activation_stream(lm, cfg.hook, shuffled, cfg.context):
            chunks.append(a)
            n += a.shape[0]
            if n >= cfg.buffer_tokens:
                buf = torch.cat(chunks)
                buf = buf[torch.randperm(buf.shape[0], generator=torch.Generator().manual_seed(cfg.seed + len(chunks)))]
                for i in range(0, buf.shape[0] - cfg.batch_size + 1, cfg.batch_size):
                    yield buf[i : i + cfg.batch_size].to(lm.device)
                chunks, n = [], 0
        epoch += 1


def train_sae_lens(lm, cfg: SAETrainConfig, texts: list[str], lr: float) -> float:
    import sae_lens  # deferred: heavy, and only this comparison needs the trainer
    from sae_lens.config import LoggingConfig, SAETrainerConfig
    from sae_lens.training.sae_trainer import SAETrainer

    t0 = time.time()
    steps = cfg.tokens // cfg.batch_size
    sae_cfg = sae_lens.BatchTopKTrainingSAEConfig(
        d_in=lm.d_model,
        d_sae=cfg.width,
        k=cfg.k,
        dtype="float32",
        device=str(lm.device),
        normalize_activations="expected_average_only_in",
    )
    md = sae_cfg.metadata
    md.hook_name, md.model_class_name, md.prepend_bos, md.model_name = cfg.hook, "AutoModelForCausalLM", True, "ref"
    sae = sae_lens.BatchTopKTrainingSAE(sae_cfg)
    trainer_cfg = SAETrainerConfig(
        total_training_samples=steps * cfg.batch_size,
        train_batch_size_samples=cfg.batch_size,
        lr=lr,
        lr_end=0.0,
        lr_scheduler_name="constant",
        lr_decay_steps=max(1, steps // 5),
        device=str(lm.device),
        n_batches_for_norm_estimate=min(100, steps),
        logger=LoggingConfig(log_to_wandb=False),
    )
    trained = SAETrainer(trainer_cfg, sae, batches(lm, cfg, texts)).fit()
    seconds = time.time() - t0
    trained.save_inference_model(cfg.out)
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tokens", type=int, default=1_000_000)
    ap.add_argument("--width", type=int, default=1024)
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--hook", default="blocks.3.hook_resid_pre")
    ap.add_argument("--out", default=".work/sae-trainer-compare")
    ap.add_argument("--eval-texts", type=int, default=200)
    args = ap.parse_args()
    out = Path(args.out)
    lm = load_model("reference")
    cfg = SAETrainConfig(
        model="reference",
        hook=args.hook,
        width=args.width,
        out=str(out / "saedetox"),
        k=args.k,
        tokens=args.tokens,
        batch_size=args.batch_size,
        buffer_tokens=max(8 * args.batch_size, 65_536),
    )
    lr = cfg.lr or 2e-4 * math.sqrt(16384 / cfg.width)
    texts = corpus_texts(None, cfg.seed)
    held = corpus_texts(None, cfg.seed, role="lm_heldout")[: args.eval_texts]
    t0 = time.time()
    ours = train_sae(cfg, texts=texts, eval_texts=held)
    ours_seconds = time.time() - t0
    lens_cfg = replace(cfg, out=str(out / "sae_lens"))
    lens_seconds = train_sae_lens(lm, lens_cfg, texts, lr)
    theirs = evaluate_sae_dir(lm, Path(lens_cfg.out), lens_cfg, held)
    keys = ("explained_variance", "mean_l0", "dead_share", "ce_clean", "ce_spliced", "ce_delta")
    rows = {
        "saedetox": {**{k: ours.get(k) for k in keys}, "wall_seconds": round(ours_seconds, 1)},
        "sae_lens": {**{k: theirs.get(k) for k in keys}, "wall_seconds": round(lens_seconds, 1)},
        "settings": {
            "tokens": cfg.tokens,
            "width": cfg.width,
            "k": cfg.k,
            "batch_size": cfg.batch_size,
            "lr": lr,
            "hook": cfg.hook,
            "eval_texts": len(held),
            "device": str(lm.device),
        },
    }
    (out / "compare.json").write_text(json.dumps(rows, indent=2))
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
