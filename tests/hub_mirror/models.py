"""Random-weight stand-ins for ``gpt2``, ``gpt2-xl``, ``google/gemma-2-2b`` and ``google/gemma-2-9b``.

Tensor names and shapes are those of the published checkpoints (no ``transformers`` needed to
write them); ``from_pretrained(..., output_loading_info=True)`` reports no missing or unexpected keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import save_file
from tokenizers import AddedToken, Tokenizer, decoders, pre_tokenizers, processors
from tokenizers.models import BPE

from .cache import RepoWriter, rng_for
from .facts import GEMMA_GENERATION_CONFIG, GPT2_GENERATION_CONFIG, REAL_CONFIGS, REAL_SHARDS, SMALL_OVERRIDES


def gpt2_shapes(cfg: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Tensor names/shapes of the published GPT-2 checkpoints (no "transformer." prefix, no lm_head: tied)."""
    d, n_inner = cfg["n_embd"], cfg.get("n_inner") or 4 * cfg["n_embd"]
    shapes: dict[str, tuple[int, ...]] = {"wte.weight": (cfg["vocab_size"], d), "wpe.weight": (cfg["n_positions"], d)}
    for i in range(cfg["n_layer"]):
        h = f"h.{i}."
        shapes.update(
            {
                h + "ln_1.weight": (d,),
                h + "ln_1.bias": (d,),
                h + "attn.c_attn.weight": (d, 3 * d),  # Conv1D: [in, out]
                h + "attn.c_attn.bias": (3 * d,),
                h + "attn.c_proj.weight": (d, d),
                h + "attn.c_proj.bias": (d,),
                h + "ln_2.weight": (d,),
                h + "ln_2.bias": (d,),
                h + "mlp.c_fc.weight": (d, n_inner),
                h + "mlp.c_fc.bias": (n_inner,),
                h + "mlp.c_proj.weight": (n_inner, d),
                h + "mlp.c_proj.bias": (d,),
            }
        )
    shapes.update({"ln_f.weight": (d,), "ln_f.bias": (d,)})
    return shapes


def gemma2_shapes(cfg: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Tensor names/shapes of the published Gemma-2 checkpoints (``model.`` prefix, no lm_head: tied)."""
    d, hd, inter = cfg["hidden_size"], cfg["head_dim"], cfg["intermediate_size"]
    nq, nkv = cfg["num_attention_heads"] * hd, cfg["num_key_value_heads"] * hd
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (cfg["vocab_size"], d)}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        shapes.update(
            {
                p + "input_layernorm.weight": (d,),
                p + "self_attn.q_proj.weight": (nq, d),  # nn.Linear: [out, in]
                p + "self_attn.k_proj.weight": (nkv, d),
                p + "self_attn.v_proj.weight": (nkv, d),
                p + "self_attn.o_proj.weight": (d, nq),
                p + "post_attention_layernorm.weight": (d,),
                p + "pre_feedforward_layernorm.weight": (d,),
                p + "mlp.gate_proj.weight": (inter, d),
                p + "mlp.up_proj.weight": (inter, d),
                p + "mlp.down_proj.weight": (d, inter),
                p + "post_feedforward_layernorm.weight": (d,),
            }
        )
    shapes["model.norm.weight"] = (d,)
    return shapes


def _fill(name: str, shape: tuple[int, ...], rng: np.random.Generator, norm_one: bool, std: float) -> np.ndarray:
    if len(shape) == 1:
        if "norm" in name or ".ln_" in name or name.startswith("ln_"):
            base = 1.0 if norm_one else 0.0  # GPT-2 LayerNorm weight 1 / Gemma RMSNorm (1 + w): w = 0
            if name.endswith(".bias"):
                base = 0.0
            return (base + 0.02 * rng.standard_normal(shape)).astype(np.float32)
        return (0.02 * rng.standard_normal(shape)).astype(np.float32)
    return (std * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32, copy=False)


def _save_shards(
    repo: RepoWriter, tensors: dict[str, np.ndarray], n_shards: int, metadata: dict[str, str] | None = None
) -> None:
    metadata = metadata or {"format": "pt"}
    if n_shards <= 1:
        save_file(tensors, str(repo.path("model.safetensors")), metadata=metadata)
        return
    names = list(tensors)
    sizes = [tensors[n].nbytes for n in names]
    total = sum(sizes)
    target = total / n_shards
    shards: list[list[str]] = [[]]
    acc = 0.0
    for n, s in zip(names, sizes, strict=True):
        if acc >= target * len(shards) and len(shards) < n_shards:
            shards.append([])
        shards[-1].append(n)
        acc += s
    while len(shards) < n_shards:  # split the largest shard until the count matches
        big = max(range(len(shards)), key=lambda i: len(shards[i]))
        half = len(shards[big]) // 2
        shards.insert(big + 1, shards[big][half:])
        shards[big] = shards[big][:half]
    weight_map = {}
    for i, group in enumerate(shards, 1):
        fname = f"model-{i:05d}-of-{n_shards:05d}.safetensors"
        save_file({n: tensors[n] for n in group}, str(repo.path(fname)), metadata=metadata)
        weight_map.update({n: fname for n in group})
    repo.write_json("model.safetensors.index.json", {"metadata": {"total_size": total}, "weight_map": weight_map})


# --------------------------------------------------------------------------- GPT-2


def _gpt2_tokenizer_json(src: Path) -> str:
    """tokenizer.json as published in the gpt2 repos (byte-level BPE, <|endoftext|> = 50256)."""
    tok = Tokenizer(BPE.from_file(str(src / "vocab.json"), str(src / "merges.txt"), fuse_unk=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True)
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True)
    tok.post_processor = processors.ByteLevel(add_prefix_space=True, trim_offsets=False)
    tok.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=True)])
    return tok.to_str()


def write_gpt2(
    cache_dir: Path,
    repo_id: str,
    *,
    full: bool,
    seed: int,
    tokenizer_dir: Path,
    layout: str,
    attn_bias: bool | None = None,
) -> Path:
    cfg = dict(REAL_CONFIGS[repo_id])
    if not full:
        cfg.update(SMALL_OVERRIDES[repo_id])
    rng = rng_for(seed, repo_id)
    tensors = {
        name: _fill(name, shape, rng, norm_one=True, std=cfg["initializer_range"])
        for name, shape in gpt2_shapes(cfg).items()
    }
    if attn_bias if attn_bias is not None else full:
        n = cfg["n_positions"]
        mask = np.tril(np.ones((n, n), dtype=np.float32))[None, None]
        for layer in range(cfg["n_layer"]):
            tensors[f"h.{layer}.attn.bias"] = mask  # buffer in the real file; ignored on load
    repo = RepoWriter(cache_dir, repo_id, layout)
    repo.write_json("config.json", cfg)
    repo.write_json("generation_config.json", GPT2_GENERATION_CONFIG)
    _save_shards(repo, tensors, REAL_SHARDS[repo_id])
    repo.copy("vocab.json", tokenizer_dir / "vocab.json")
    repo.copy("merges.txt", tokenizer_dir / "merges.txt")
    repo.write_bytes("tokenizer.json", _gpt2_tokenizer_json(tokenizer_dir).encode())
    repo.write_json("tokenizer_config.json", {"model_max_length": 1024}, indent=None)
    return repo.commit()


def write_gemma(
    cache_dir: Path,
    repo_id: str,
    *,
    full: bool,
    seed: int,
    layout: str,
    tokenizer: dict[str, bytes],
    vocab_size: int,
) -> Path:
    cfg = dict(REAL_CONFIGS[repo_id])
    if not full:
        cfg.update(SMALL_OVERRIDES[repo_id])
    cfg["vocab_size"] = vocab_size  # = the tokenizer's
    rng = rng_for(seed, repo_id)
    tensors = {
        name: _fill(name, shape, rng, norm_one=False, std=cfg["initializer_range"])
        for name, shape in gemma2_shapes(cfg).items()
    }
    repo = RepoWriter(cache_dir, repo_id, layout)
    repo.write_json("config.json", cfg)
    repo.write_json("generation_config.json", GEMMA_GENERATION_CONFIG)
    _save_shards(repo, tensors, REAL_SHARDS[repo_id])
    for name, data in tokenizer.items():
        repo.write_bytes(name, data)
    return repo.commit()
