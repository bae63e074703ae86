"""A Gemma-style tokenizer built offline (``tokenizers`` only): Gemma's special ids, BOS prepended, byte fallback."""

from __future__ import annotations

import json
import string
from collections.abc import Iterable
from typing import Any

from tokenizers import AddedToken, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import BPE
from tokenizers.trainers import BpeTrainer

GEMMA_SPECIALS = (
    ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<2mass>", "[@BOS@]"]
    + [f"<unused{i}>" for i in range(99)]
    + ["<start_of_turn>", "<end_of_turn>"]
)  # ids 0..107 as in the real Gemma vocabulary
GEMMA_NAMED = {"pad": 0, "eos": 1, "bos": 2, "unk": 3, "mask": 4}

_GEMMA_TRAIN_TEXT = """\
The library opens at nine in the morning and closes at six in the evening.
She walked to the station, bought a ticket and waited for the next train to the city.
Our team spent the afternoon reviewing the budget for the coming year and the plans for the new office.
The weather was cold and windy, so they stayed inside and read books by the fire.
He said that the results of the experiment were better than anyone had expected.
A small dog was sleeping under the table while the children played in the garden.
The company announced that it would open three new stores in the north of the country.
Please remember to bring your notes, a pen and some water to the meeting tomorrow.
They talked about music, films, food, travel and the people they had met over the years.
The river runs through the old town, past the market, the church and the school.
I think you should call her and tell her what happened, because she would want to know.
You are such an idiot, shut up, this is stupid and I hate it, what the hell is wrong with you.
The government said the new law will help families, workers and small businesses across the region.
We were looking for a quiet place to eat, and we found a little restaurant near the harbour.
Scientists have found that sleep plays an important role in memory and learning.
The model generates text one token at a time, and each token depends on the ones before it.
"""


_ALPHABET = string.ascii_letters + string.digits + string.punctuation + " "


def gemma_tokenizer_files(vocab_size: int = 2048, texts: Iterable[str] = ()) -> dict[str, bytes]:
    """Gemma-style tokenizer built offline: BPE + byte fallback, ▁ for spaces, <bos> prepended.

    Ids 0..107 are the real Gemma specials (<pad>=0, <eos>=1, <bos>=2, <unk>=3, <mask>=4, ...,
    <start_of_turn>=106, <end_of_turn>=107), then the 256 byte tokens <0x00>..<0xFF>, then BPE
    BPE tokens trained on a built-in text plus ``texts``; padded with <unusedN> up to ``vocab_size``.
    """
    lines = [ln for ln in _GEMMA_TRAIN_TEXT.splitlines() if ln] * 4 + [t for t in texts if t]
    n_fixed = len(GEMMA_SPECIALS) + 256
    trainer_tok = Tokenizer(BPE(unk_token=None))
    trainer_tok.normalizer = normalizers.Replace(" ", "▁")
    trainer_tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never")
    alphabet = sorted(set(_ALPHABET.replace(" ", "▁")) | {"\n"})  # anything else: byte fallback
    trainer = BpeTrainer(
        vocab_size=max(vocab_size - n_fixed, len(alphabet)),
        initial_alphabet=alphabet,
        special_tokens=[],
        show_progress=False,
        min_frequency=2,
    )
    trainer_tok.train_from_iterator(lines, trainer=trainer)
    model = json.loads(trainer_tok.to_str())["model"]
    trained = sorted(model["vocab"].items(), key=lambda kv: kv[1])
    vocab: dict[str, int] = {}
    for tok in GEMMA_SPECIALS + [f"<0x{b:02X}>" for b in range(256)]:
        vocab[tok] = len(vocab)
    for tok, _ in trained:
        if tok not in vocab and len(vocab) < vocab_size:
            vocab[tok] = len(vocab)
    extra = 99
    while len(vocab) < vocab_size:
        vocab[f"<unused{extra}>"] = len(vocab)
        extra += 1
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    merges = [m for m in merges if m[0] in vocab and m[1] in vocab and m[0] + m[1] in vocab]

    tok = Tokenizer(BPE(vocab=vocab, merges=merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.normalizer = normalizers.Replace(" ", "▁")
    tok.pre_tokenizer = None
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    tok.post_processor = processors.TemplateProcessing(
        single="<bos>:0 $A:0", pair="<bos>:0 $A:0 <bos>:1 $B:1", special_tokens=[("<bos>", 2)]
    )
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in GEMMA_SPECIALS])

    def added(t: str) -> dict[str, Any]:
        return {"content": t, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False}

    tok_cfg = {
        "add_bos_token": True,
        "add_eos_token": False,
        "added_tokens_decoder": {str(i): {**added(t), "special": True} for i, t in enumerate(GEMMA_SPECIALS)},
        "additional_special_tokens": ["<start_of_turn>", "<end_of_turn>"],
        "bos_token": "<bos>",
        "clean_up_tokenization_spaces": False,
        "eos_token": "<eos>",
        "model_max_length": 1000000000000000019884624838656,
        "pad_token": "<pad>",
        "sp_model_kwargs": {},
        "spaces_between_special_tokens": False,
        "tokenizer_class": "GemmaTokenizer",
        "unk_token": "<unk>",
        "use_default_system_prompt": False,
    }
    special_map = {
        "additional_special_tokens": ["<start_of_turn>", "<end_of_turn>"],
        "bos_token": added("<bos>"),
        "eos_token": added("<eos>"),
        "pad_token": added("<pad>"),
        "unk_token": added("<unk>"),
    }
    return {
        "tokenizer.json": tok.to_str().encode(),
        "tokenizer_config.json": (json.dumps(tok_cfg, indent=2) + "\n").encode(),
        "special_tokens_map.json": (json.dumps(special_map, indent=2) + "\n").encode(),
    }
