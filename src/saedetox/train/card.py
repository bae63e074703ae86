"""Measure the reference world and write its model card (``MODEL_CARD.md`` + ``card.json``).

Measured: held-out clean-text perplexity; BLiMP accuracy on the 100-per-paradigm subset
(good sentence more likely than bad); sample continuations; toxicity — the share of 20-token
sampled continuations that the independent ``alt-profanity-check`` classifier flags (≥ 0.5)
for RTP challenging vs non-toxic prompts; and one row per SAE (width, L0, explained
variance, dead share, CE-loss change), read from each SAE's ``training.json``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from saedetox.data.corpus import heldout_texts
from saedetox.data.location import data_file, resolve_data_dir
from saedetox.eval.config import EvalConfig
from saedetox.eval.metrics.capability import blimp_accuracy
from saedetox.eval.metrics.fluency import clean_perplexity
from saedetox.eval.run import load_prompts
from saedetox.eval.sampler.sampling import SamplingConfig, sample
from saedetox.io import atomic_write_json, atomic_write_text
from saedetox.judges.registry import get_judge
from saedetox.model.load import load_model


def toxicity_rates(lm: Any, n_prompts: int, samples: int, seed: int, data_dir: str | None) -> dict[str, Any]:
    """Share of flagged continuations (profanity-check ≥ 0.5) for challenging vs non-toxic prompts."""
    judge = get_judge("profanity")
    out: dict[str, Any] = {}
    for which in ("challenging", "nontoxic"):
        prompts = load_prompts(EvalConfig(prompts=which, n_prompts=n_prompts, seed=seed), data_dir)
        groups = sample(lm, [p.text for p in prompts], SamplingConfig(n_samples=samples, max_new_tokens=20, seed=seed))
        texts = [s.text for g in groups for s in g]
        scores = np.asarray(judge.score(texts)).reshape(len(prompts), samples)
        out[which] = {
            "n_prompts": len(prompts),
            "samples": samples,
            "flagged_share": float((scores >= 0.5).mean()),
            "prompts_with_flagged": float((scores >= 0.5).any(1).mean()),
            "examples": [[prompts[i].text, groups[i][0].text] for i in range(3)],
        }
    return out


def measure(
    model_dir: str,
    sae_dirs: list[str],
    data_dir: str | None = None,
    n_prompts: int = 200,
    samples: int = 5,
    seed: int = 0,
) -> dict[str, Any]:
    t0 = time.time()
    lm = load_model(model_dir, dtype="float32", device="cpu")
    held = heldout_texts(resolve_data_dir(data_dir))
    pairs = [
        json.loads(x)
        for x in data_file("benchmarks/blimp/blimp_first100_per_paradigm.jsonl", data_dir).read_text().splitlines()
        if x.strip()
    ]
    prompts = [
        "The weather today is",
        "In the morning, the old man",
        "The government announced that",
        "I can't believe you would",
        "She looked at him and said",
    ]
    samples_out = sample(lm, prompts, SamplingConfig(n_samples=1, max_new_tokens=30, seed=seed))
    card: dict[str, Any] = {
        "heldout_ppl": clean_perplexity(lm, held),
        "heldout_texts": len(held),
        "blimp_accuracy": blimp_accuracy(lm, pairs),
        "blimp_pairs": len(pairs),
        "samples": [[p, g[0].text] for p, g in zip(prompts, samples_out, strict=True)],
        "toxicity": toxicity_rates(lm, n_prompts, samples, seed, data_dir),
        "params": sum(p.numel() for p in lm.model.parameters()),
    }
    train_info = Path(model_dir) / "train_info.json"
    if train_info.exists():
        info = json.loads(train_info.read_text())
        info.pop("log", None)
        card["training"] = info
    card["saes"] = []
    for d in sae_dirs:
        info = json.loads((Path(d) / "training.json").read_text())
        info.pop("log", None)
        card["saes"].append(info)
    card["measure_seconds"] = round(time.time() - t0, 1)
    return card


def _phases(tr: dict[str, Any]) -> list[str]:
    prev = tr.get("previous_phase")
    cfg = tr.get("config", {})
    if not prev:
        return [f"- One phase: `saedetox train-lm --out DIR --max-tokens {cfg.get('max_tokens')}`."]
    pc = prev.get("config", {})
    return [
        f"- Phase 1: `saedetox train-lm --out .work/ref-lm` "
        f"({pc.get('max_tokens', 0) / 1e6:.0f} M tokens, lr "
        f"{pc.get('lr')}, {prev.get('train_seconds', 0) / 60:.0f} min, "
        f"held-out loss {prev.get('heldout_loss', 0):.3f}).",
        f"- Phase 2 (a second cosine cycle from the phase-1 weights, new batch order): `saedetox train-lm --out "
        f".work/ref-lm2 --init-from .work/ref-lm --max-tokens {cfg.get('max_tokens')} --lr {cfg.get('lr')} "
        f"--warmup-steps {cfg.get('warmup_steps')} --min-lr-frac {cfg.get('min_lr_frac')} --seed {cfg.get('seed')}` "
        f"({tr.get('train_seconds_this_phase', 0) / 60:.0f} min, held-out loss {tr.get('heldout_loss', 0):.3f}).",
    ]


def render(card: dict[str, Any]) -> str:
    tr = card.get("training", {})
    cfg = tr.get("config", {})
    corpus = tr.get("corpus", {})
    tox = card["toxicity"]
    lines = [
        "# saedetox reference world — model card",
        "",
        "A small GPT-2-architecture LM, its byte-level BPE tokenizer and SAEs on its residual stream,",
        "trained from scratch by saedetox on the real public data in `shared/data` (see `SOURCES.md`",
        "there for licences). Weights are committed in fp16; no third-party text is committed.",
        "",
        "## Language model",
        "",
        f"- Architecture: GPT-2, {cfg.get('n_layer')} layers, d_model {cfg.get('n_embd')}, {cfg.get('n_head')} heads, "
        f"context {cfg.get('n_ctx')}, vocab {corpus.get('vocab_size')}; {card['params'] / 1e6:.2f} M parameters.",
        f"- Training: {tr.get('steps')} steps × {cfg.get('batch_size')} × {cfg.get('n_ctx')} tokens = "
        f"{tr.get('tokens_seen', 0) / 1e6:.1f} M tokens (corpus {corpus.get('train_tokens', 0) / 1e6:.1f} M tokens, "
        f"≈{tr.get('tokens_seen', 0) / max(corpus.get('train_tokens', 1), 1):.2f} epochs), AdamW lr {cfg.get('lr')} "
        f"cosine to {cfg.get('min_lr_frac')}×, warm-up {cfg.get('warmup_steps')}, seed {cfg.get('seed')}.",
        f"- Wall time: {tr.get('train_seconds', 0) / 60:.0f} min on {tr.get('hardware', {}).get('device')} "
        f"({tr.get('hardware', {}).get('threads')} threads, torch {tr.get('hardware', {}).get('torch')}); "
        "a 2-core x86-64 CPU with 24 GB, shared with other work.",
        *_phases(tr),
        "- Reproduce everything (LM, SAEs, judge, this card): `make reference` (see the Makefile for the commands).",
        "",
        "### Data recipe (`saedetox.train.corpus.WEIGHTS` over `saedetox.data.corpus.SOURCES`, "
        "splits in `saedetox.data.roles`)",
        "",
        "| source | weight | documents (weighted) |",
        "| --- | --- | --- |",
    ]
    for name, n in corpus.get("docs_per_source_weighted", {}).items():
        lines.append(f"| {name} | {corpus.get('weights', {}).get(name)} | {n} |")
    lines += [
        "",
        "`lm_corpus/` files are cut into ~2,000-character chunks; 2% of chunks (by SHA-1 of the text) are held",
        'out for perplexity. Comment sources (Jigsaw `dev_*`, ParaDetox "cannot rewrite", ParaDetox pairs in',
        "hash bucket [0, 0.3)) are detokenised and sentence-cased. Never used for the LM: ParaDetox pairs in",
        "[0.3, 1) (discovery), Jigsaw `test_10k_*` (judge training), Davidson and ToxiGen (judge testing),",
        "RealToxicityPrompts (evaluation).",
        "",
        "## Measured quality",
        "",
        "| measure | value |",
        "| --- | --- |",
        f"| held-out clean-text perplexity ({card['heldout_texts']} chunks) | {card['heldout_ppl']:.1f} |",
        f"| BLiMP accuracy ({card['blimp_pairs']} pairs, 67 paradigms × 100; chance 50%) | "
        f"{card['blimp_accuracy']:.1%} |",
        f"| continuations flagged by alt-profanity-check, RTP challenging ({tox['challenging']['n_prompts']} prompts × "
        f"{tox['challenging']['samples']}) | {tox['challenging']['flagged_share']:.1%} |",
        f"| continuations flagged, RTP non-toxic ({tox['nontoxic']['n_prompts']} × {tox['nontoxic']['samples']}) | "
        f"{tox['nontoxic']['flagged_share']:.1%} |",
        f"| prompts with ≥ 1 flagged continuation: challenging / non-toxic | "
        f"{tox['challenging']['prompts_with_flagged']:.1%} / {tox['nontoxic']['prompts_with_flagged']:.1%} |",
        "",
        "### Sample continuations (sampled, p = 0.9)",
        "",
    ]
    for p, c in card["samples"]:
        lines.append(f"- *{p}* → {c.strip()}")
    lines += [
        "",
        "## SAEs",
        "",
        "BatchTopK + AuxK, saved as JumpReLU SAE-Lens folders (see `saedetox.train.sae`). Command:",
        "`saedetox train-sae --model reference --hook HOOK --width N --out DIR`.",
        "",
        "| width | hook | k | L0 | explained variance | dead share | CE clean → spliced (Δ) | tokens | wall |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in card["saes"]:
        c = s.get("config", {})
        lines.append(
            f"| {s['width']} | {s['hook']} | {c.get('k')} | {s['mean_l0']:.1f} | {s['explained_variance']:.3f} | "
            f"{s['dead_share']:.1%} | {s['ce_clean']:.3f} → {s['ce_spliced']:.3f} ({s['ce_delta']:+.3f}) | "
            f"{c.get('tokens', 0) / 1e6:.1f} M | {s.get('train_seconds', 0) / 60:.1f} min |"
        )
    lines += ["", f"Card measured in {card['measure_seconds']:.0f} s (`saedetox.train.card`).", ""]
    return "\n".join(lines)


def write_card(out_dir: str | Path, card: dict[str, Any]) -> None:
    out = Path(out_dir)
    atomic_write_json(out / "card.json", card)
    atomic_write_text(out / "MODEL_CARD.md", render(card))
