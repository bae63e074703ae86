"""``saedetox train-lm``: a byte-level BPE tokenizer and a GPT-2 model trained from scratch.

Recipe: the documents of :data:`saedetox.data.corpus.SOURCES` (role ``lm``) are weighted by
:data:`saedetox.train.corpus.WEIGHTS`,
shuffled with the seed, joined with ``<|endoftext|>`` and tokenised once into a uint16 stream
(cached in ``OUT/cache``). Training draws random windows of ``n_ctx`` tokens; the windows of
step *s* come from ``numpy.random.default_rng([seed, s])``, so a resumed run sees exactly the
batches an uninterrupted one would. Checkpoints (model + optimiser) are written atomically
every ``ckpt_every`` steps; rerunning the same command resumes from the last one. The result
is a normal Hugging Face model directory (fp16 safetensors + tokenizer).
"""

from __future__ import annotations

import json
import math
import platform
import random
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from saedetox.data.corpus import SOURCES, heldout_texts, source_docs
from saedetox.data.location import resolve_data_dir
from saedetox.errors import SaedetoxError
from saedetox.io import atomic_save_torch, atomic_write_text
from saedetox.progress import note, progress_bar
from saedetox.train.config import LMTrainConfig
from saedetox.train.corpus import WEIGHTS, weighted

EOS = "<|endoftext|>"


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


# --------------------------------------------------------------------------- corpus + tokenizer


def _gather(cfg: LMTrainConfig, root: Path) -> tuple[list[str], list[str], dict[str, int]]:
    """(weighted training docs, unweighted docs for the tokenizer, doc counts per source)."""
    train, unique, counts = [], [], {}
    for src in SOURCES:
        docs = list(source_docs(root, src, "lm"))
        if cfg.max_docs_per_source is not None:
            docs = docs[: cfg.max_docs_per_source]
        unique += docs
        w = weighted(docs, WEIGHTS[src.name], src.name)
        counts[src.name] = len(w)
        train += w
    return train, unique, counts


def train_tokenizer(texts: list[str], vocab_size: int):
    """Byte-level BPE (GPT-2 style) with light normalisation of curly quotes."""
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.NFKC(),
            normalizers.Replace("\u2019", "'"),
            normalizers.Replace("\u2018", "'"),
            normalizers.Replace("\u201c", '"'),
            normalizers.Replace("\u201d", '"'),
        ]
    )
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=EOS, eos_token=EOS, unk_token=EOS, pad_token=EOS)
    fast.model_max_length = 1 << 30
    return fast


def build_corpus(cfg: LMTrainConfig) -> tuple[Path, dict]:
    """Tokenizer + uint16 token streams in ``OUT/cache`` (reused when present)."""
    out = Path(cfg.out)
    cache = out / "cache"
    meta_path = cache / "corpus.json"
    if cfg.init_from is not None:
        prev = Path(cfg.init_from) / "cache"
        if not (prev / "corpus.json").exists():
            raise SaedetoxError(f"init_from {cfg.init_from} has no cache/ with its tokenizer and token stream.")
        return prev, json.loads((prev / "corpus.json").read_text())
    if meta_path.exists():
        return cache, json.loads(meta_path.read_text())
    note("reading the corpus")
    root = resolve_data_dir(cfg.data_dir)  # the data is read before anything is created: bad input leaves no cache/
    train_docs, unique, counts = _gather(cfg, root)
    heldout = heldout_texts(root)
    if cfg.max_docs_per_source is not None:
        heldout = heldout[: cfg.max_docs_per_source]
    note(f"training the tokenizer ({cfg.vocab_size} tokens)")
    tok = train_tokenizer(unique, cfg.vocab_size)
    cache.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(cache / "tokenizer")
    eos = tok.convert_tokens_to_ids(EOS)
    random.Random(cfg.seed).shuffle(train_docs)

    def stream(docs: list[str]) -> np.ndarray:
        ids: list[int] = []
        for start in range(0, len(docs), 2048):
            for enc in tok(docs[start : start + 2048], add_special_tokens=False)["input_ids"]:
                ids.extend(enc)
                ids.append(eos)
        return np.asarray(ids, dtype=np.uint16)

    note(f"encoding the corpus ({len(train_docs)} training documents)")
    train_ids, held_ids = stream(train_docs), stream(heldout)
    np.save(cache / "train.npy", train_ids)
    np.save(cache / "heldout.npy", held_ids)
    meta = {
        "data_dir": str(root),
        "docs_per_source_weighted": counts,
        "weights": {s.name: WEIGHTS[s.name] for s in SOURCES},
        "train_tokens": int(train_ids.size),
        "heldout_tokens": int(held_ids.size),
        "heldout_docs": len(heldout),
        "vocab_size": len(tok),
    }
    atomic_write_text(meta_path, json.dumps(meta, indent=2))
    return cache, meta


# --------------------------------------------------------------------------- training


def lr_at(step: int, cfg: LMTrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (cfg.min_lr_frac + (1 - cfg.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def batch_at(tokens: np.ndarray, step: int, cfg: LMTrainConfig) -> torch.Tensor:
    rng = np.random.default_rng([cfg.seed, step])
    starts = rng.integers(0, tokens.size - cfg.n_ctx, size=cfg.batch_size)
    return torch.from_numpy(np.stack([tokens[s : s + cfg.n_ctx] for s in starts]).astype(np.int64))


@torch.no_grad()
def heldout_loss(model, tokens: np.ndarray, n_ctx: int, device: torch.device, max_windows: int = 64) -> float:
    """Mean next-token loss over non-overlapping windows of the held-out stream."""
    model.eval()
    n = min(max_windows, tokens.size // n_ctx)
    if n == 0:
        return float("nan")
    x = torch.from_numpy(tokens[: n * n_ctx].astype(np.int64).reshape(n, n_ctx)).to(device)
    losses = [model(input_ids=x[i : i + 16], labels=x[i : i + 16]).loss.item() for i in range(0, n, 16)]
    model.train()
    return float(np.mean(losses))


def build_model(cfg: LMTrainConfig, vocab_size: int, eos_id: int):
    conf = GPT2Config(
        vocab_size=vocab_size,
        n_positions=cfg.n_ctx,
        n_embd=cfg.n_embd,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        # GPT-2's tanh-approximated GELU, as one fused kernel: the same function as "gelu_new" (its Python
        # formula, several elementwise passes), ~10% of the reference model's CPU time saved
        activation_function="gelu_pytorch_tanh",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
    )
    torch.manual_seed(cfg.seed)
    return GPT2LMHeadModel(conf)


def train_lm(cfg: LMTrainConfig) -> Path:
    """Train (or resume) and write the HF model directory ``cfg.out``. Returns its path."""
    if cfg.n_embd % cfg.n_head:
        raise SaedetoxError(f"n_embd {cfg.n_embd} must be divisible by n_head {cfg.n_head}.")
    out = Path(cfg.out)
    t0 = time.time()
    cache, meta = build_corpus(cfg)
    tok = AutoTokenizer.from_pretrained(cache / "tokenizer")
    train_ids = np.load(cache / "train.npy")
    held_ids = np.load(cache / "heldout.npy")
    device = pick_device(cfg.device)
    eos_id = tok.convert_tokens_to_ids(EOS)
    model = build_model(cfg, len(tok), eos_id)
    previous = None
    if cfg.init_from is not None:
        model = GPT2LMHeadModel.from_pretrained(cfg.init_from, dtype=torch.float32)
        info_path = Path(cfg.init_from) / "train_info.json"
        if info_path.exists():
            previous = json.loads(info_path.read_text())
    model = model.to(device)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=(0.9, 0.95),
    )
    ckpt_path = out / "checkpoints" / "last.pt"
    start, log, elapsed_before = 0, [], 0.0
    if ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        start, log, elapsed_before = state["step"], state["log"], state.get("elapsed", 0.0)
    fwd = torch.compile(model) if cfg.compile else model
    model.train()
    t_loop = time.time()
    with progress_bar(f"train-lm ({cfg.steps} steps)", total=cfg.steps, completed=start) as bar:
        for step in range(start, cfg.steps):
            for group in opt.param_groups:
                group["lr"] = lr_at(step, cfg)
            x = batch_at(train_ids, step, cfg).to(device)
            loss = fwd(input_ids=x, labels=x).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            done = step + 1
            entry = {"step": done, "loss": round(loss.item(), 4)}
            if done % cfg.eval_every == 0 or done == cfg.steps:
                entry["heldout_loss"] = round(heldout_loss(model, held_ids, cfg.n_ctx, device), 4)
            log.append(entry)
            bar.advance(1, description=f"train-lm loss {entry['loss']:.3f}")
            if done % cfg.ckpt_every == 0 or done == cfg.steps:
                elapsed = elapsed_before + time.time() - t_loop
                atomic_save_torch(
                    {
                        "model": model.state_dict(),
                        "opt": opt.state_dict(),
                        "step": done,
                        "log": log,
                        "elapsed": elapsed,
                    },
                    ckpt_path,
                )
    train_seconds = elapsed_before + time.time() - t_loop
    final_held = heldout_loss(model, held_ids, cfg.n_ctx, device, max_windows=10_000)
    if cfg.init_from is not None:  # keep the (identical) token cache with the model for later phases
        if not (out / "cache").exists():
            shutil.copytree(cache, out / "cache")
    model = model.to(torch.float16)
    model.config.dtype = "float16"
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    info = {
        "config": asdict(cfg),
        "corpus": meta,
        "steps": cfg.steps,
        "tokens_seen": cfg.steps * cfg.batch_size * cfg.n_ctx + (previous or {}).get("tokens_seen", 0),
        "tokens_this_phase": cfg.steps * cfg.batch_size * cfg.n_ctx,
        "previous_phase": {k: v for k, v in (previous or {}).items() if k != "log"} or None,
        "params": sum(p.numel() for p in model.parameters()),
        "heldout_loss": final_held,
        "heldout_ppl": math.exp(final_held) if final_held == final_held else None,
        "train_seconds": round(train_seconds + (previous or {}).get("train_seconds", 0), 1),
        "train_seconds_this_phase": round(train_seconds, 1),
        "wall_seconds_this_run": round(time.time() - t0, 1),
        "hardware": {
            "device": str(device),
            "cpu": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
        "log": log,
    }
    atomic_write_text(out / "train_info.json", json.dumps(info, indent=2))
    return out
