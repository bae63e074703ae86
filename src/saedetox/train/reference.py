"""Assemble the committed reference world from trained artifacts and write its card.

    python -m saedetox.train.reference --lm .work/ref-lm --sae .work/ref-sae/width_1024 \
        --sae .work/ref-sae/width_2048 --sae .work/ref-sae/width_4096 --main 2048

re-saves the HF model into ``src/saedetox/assets/reference/lm`` in fp16 shards of at most 6 MB
(with tokenizer and ``train_info.json``; no checkpoints or caches), copies each SAE folder next to
it, marks the main SAE,
measures the world (``saedetox.train.card``) and writes ``MODEL_CARD.md`` + ``card.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

from saedetox.errors import SaedetoxError
from saedetox.io import atomic_write_text
from saedetox.train.card import measure as measure_card
from saedetox.train.card import write_card

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "reference"
LM_FILES = (
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "train_info.json",
)
SAE_FILES = ("cfg.json", "sae_weights.safetensors", "training.json")
SHARD_SIZE = "6MB"  # keeps every committed file small; from_pretrained reads the shards as one model


def write_lm(lm_src: Path, dst: Path) -> None:
    """The HF model folder: weights stored in fp16 and sharded below ``SHARD_SIZE``, config dtype float32 (so
    plain ``from_pretrained`` computes in float32 on CPU, as saedetox does), plus tokenizer and training info."""
    model = AutoModelForCausalLM.from_pretrained(lm_src, dtype=torch.float16, local_files_only=True)
    for old in list(dst.glob("model*.safetensors")) + list(dst.glob("model.safetensors.index.json")):
        old.unlink()
    model.save_pretrained(dst, max_shard_size=SHARD_SIZE)
    config = json.loads((dst / "config.json").read_text())
    config["dtype"] = "float32"
    (dst / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    for name in LM_FILES:
        if (lm_src / name).exists():
            shutil.copy2(lm_src / name, dst / name)


def assemble(lm_dir: str, sae_dirs: list[str], main: int, out: Path = ASSETS, measure: bool = True) -> Path:
    lm_src = Path(lm_dir)
    if not (lm_src / "model.safetensors").exists():
        raise SaedetoxError(f"{lm_src} has no model.safetensors; train it first (the train-lm command).")
    (out / "lm").mkdir(parents=True, exist_ok=True)
    write_lm(lm_src, out / "lm")
    widths = []
    for d in sae_dirs:
        src = Path(d)
        width = json.loads((src / "cfg.json").read_text())["d_sae"]
        dst = out / "sae" / f"width_{width}"
        dst.mkdir(parents=True, exist_ok=True)
        for name in SAE_FILES:
            shutil.copy2(src / name, dst / name)
        cfg = json.loads((dst / "cfg.json").read_text())
        cfg.setdefault("metadata", {})["model_name"] = "reference"  # the name load_model gives it
        atomic_write_text(dst / "cfg.json", json.dumps(cfg))
        widths.append(width)
    if main not in widths:
        raise SaedetoxError(f"The main width {main} is not one of the SAE widths {widths}.")
    atomic_write_text(out / "sae" / "MAIN", f"width_{main}\n")
    if measure:
        card = measure_card(str(out / "lm"), [str(out / "sae" / f"width_{w}") for w in sorted(widths)])
        card["main_sae"] = f"width_{main}"
        write_card(out, card)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lm", required=True)
    ap.add_argument("--sae", action="append", default=[])
    ap.add_argument("--main", type=int, required=True)
    ap.add_argument("--out", default=str(ASSETS))
    ap.add_argument("--no-measure", action="store_true")
    args = ap.parse_args()
    assemble(args.lm, args.sae, args.main, Path(args.out), measure=not args.no_measure)


if __name__ == "__main__":
    main()
