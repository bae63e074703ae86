"""Test helpers: tiny random-weight models, tokenizers and SAEs, built offline."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

from saedetox.cli.app import main
from saedetox.data.calibration import CALIBRATION_TEXTS
from saedetox.model.load import LoadedModel, wrap_model

EOS = "<|endoftext|>"


def tiny_tokenizer(vocab_size: int = 300):
    """A small byte-level BPE tokenizer trained on the calibration sentences."""
    from saedetox.train.lm import train_tokenizer

    texts = list(CALIBRATION_TEXTS) * 3 + ["fuck you idiot stupid damn hell shit"] * 5
    return train_tokenizer(texts, vocab_size)


def tiny_gpt2(seed: int = 0, n_layer: int = 3, d: int = 32, vocab: int | None = None) -> LoadedModel:
    from transformers import GPT2Config, GPT2LMHeadModel

    tok = tiny_tokenizer()
    torch.manual_seed(seed)
    cfg = GPT2Config(
        vocab_size=vocab or len(tok),
        n_positions=128,
        n_embd=d,
        n_layer=n_layer,
        n_head=4,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    model = GPT2LMHeadModel(cfg)
    _randomise_biases(model)
    return wrap_model(model.eval(), tok, name="tiny-gpt2")


def tiny_llama(seed: int = 0, n_layer: int = 2, d: int = 32) -> LoadedModel:
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = tiny_tokenizer()
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=d,
        intermediate_size=64,
        num_hidden_layers=n_layer,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    return wrap_model(LlamaForCausalLM(cfg).eval(), tok, name="tiny-llama")


def tiny_gemma2(seed: int = 0, n_layer: int = 2, d: int = 32) -> LoadedModel:
    from transformers import Gemma2Config, Gemma2ForCausalLM

    tok = tiny_tokenizer()
    torch.manual_seed(seed)
    cfg = Gemma2Config(
        vocab_size=len(tok),
        hidden_size=d,
        intermediate_size=64,
        num_hidden_layers=n_layer,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        max_position_embeddings=128,
        sliding_window=64,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    return wrap_model(Gemma2ForCausalLM(cfg).eval(), tok, name="tiny-gemma2")


def tiny_neox(seed: int = 0, n_layer: int = 2, d: int = 32) -> LoadedModel:
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    tok = tiny_tokenizer()
    torch.manual_seed(seed)
    cfg = GPTNeoXConfig(
        vocab_size=len(tok),
        hidden_size=d,
        intermediate_size=64,
        num_hidden_layers=n_layer,
        num_attention_heads=4,
        max_position_embeddings=128,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    return wrap_model(GPTNeoXForCausalLM(cfg).eval(), tok, name="tiny-neox")


def _ids(tok) -> dict:
    return {"bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id}


def tiny_qwen2(seed: int = 0, n_layer: int = 2, d: int = 32) -> LoadedModel:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tok = tiny_tokenizer()
    torch.manual_seed(seed)
    cfg = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=d,
        intermediate_size=64,
        num_hidden_layers=n_layer,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        **_ids(tok),
    )
    return wrap_model(Qwen2ForCausalLM(cfg).eval(), tok, name="tiny-qwen2")


def tiny_mistral(seed: int = 0, n_layer: int = 2, d: int = 32) -> LoadedModel:
    from transformers import MistralConfig, MistralForCausalLM

    tok = tiny_tokenizer()
    torch.manual_seed(seed)
    cfg = MistralConfig(
        vocab_size=len(tok),
        hidden_size=d,
        intermediate_size=64,
        num_hidden_layers=n_layer,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        sliding_window=64,
        **_ids(tok),
    )
    return wrap_model(MistralForCausalLM(cfg).eval(), tok, name="tiny-mistral")


def tiny_phi3(seed: int = 0, n_layer: int = 2, d: int = 32) -> LoadedModel:
    from transformers import Phi3Config, Phi3ForCausalLM

    tok = tiny_tokenizer()
    torch.manual_seed(seed)
    cfg = Phi3Config(
        vocab_size=len(tok),
        hidden_size=d,
        intermediate_size=64,
        num_hidden_layers=n_layer,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        original_max_position_embeddings=128,
        **_ids(tok),
    )
    return wrap_model(Phi3ForCausalLM(cfg).eval(), tok, name="tiny-phi3")


def tiny_opt(seed: int = 0, n_layer: int = 2, d: int = 32, post_ln: bool = False) -> LoadedModel:
    """Tiny OPT: pre-LN like opt-125m and larger, or post-LN (``do_layer_norm_before=False``) like opt-350m."""
    from transformers import OPTConfig, OPTForCausalLM

    tok = tiny_tokenizer()
    torch.manual_seed(seed)
    cfg = OPTConfig(
        vocab_size=len(tok),
        hidden_size=d,
        ffn_dim=64,
        word_embed_proj_dim=d,
        num_hidden_layers=n_layer,
        num_attention_heads=4,
        max_position_embeddings=128,
        do_layer_norm_before=not post_ln,
        dropout=0.0,
        attention_dropout=0.0,
        **_ids(tok),
    )
    model = OPTForCausalLM(cfg)
    _randomise_biases(model)
    return wrap_model(model.eval(), tok, name="tiny-opt-postln" if post_ln else "tiny-opt")


FAMILY_BUILDERS = {
    "gpt2": tiny_gpt2,
    "llama": tiny_llama,
    "qwen2": tiny_qwen2,
    "gemma2": tiny_gemma2,
    "mistral": tiny_mistral,
    "neox": tiny_neox,
    "phi3": tiny_phi3,
    "opt": tiny_opt,
}


def _randomise_biases(model: torch.nn.Module) -> None:
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.02)


def write_sae(
    path: Path,
    d_in: int,
    d_sae: int = 64,
    hook: str = "blocks.1.hook_resid_pre",
    arch: str = "standard",
    seed: int = 0,
    model_name: str = "tiny",
    center: bool | None = None,
    **cfg_kw,
) -> Path:
    """Write a random SAE in SAE-Lens format; biases set so that some latents fire."""
    import sae_lens

    metadata = {
        "hook_name": hook,
        "model_name": model_name,
        "prepend_bos": True,
        "model_class_name": "AutoModelForCausalLM",
    }
    if center is not None:
        metadata["model_class_name"] = "HookedTransformer"
        metadata["model_from_pretrained_kwargs"] = {"center_writing_weights": center}
    classes = {
        "standard": (sae_lens.StandardSAE, sae_lens.StandardSAEConfig),
        "jumprelu": (sae_lens.JumpReLUSAE, sae_lens.JumpReLUSAEConfig),
        "topk": (sae_lens.TopKSAE, sae_lens.TopKSAEConfig),
        "gated": (sae_lens.GatedSAE, sae_lens.GatedSAEConfig),
    }
    cls, cfg_cls = classes[arch]
    cfg = cfg_cls(d_in=d_in, d_sae=d_sae, **cfg_kw)
    for k, v in metadata.items():
        setattr(cfg.metadata, k, v)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sae = cls(cfg)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sae.named_parameters():
            if name.startswith("W_"):
                p.copy_(torch.randn(p.shape, generator=g) / d_in**0.5)
            elif name in ("b_enc", "b_gate", "b_mag"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
            elif name == "threshold":
                p.copy_(torch.rand(p.shape, generator=g) * 0.1)
            elif name == "r_mag":
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    sae.save_model(path)
    return path


TOXIC_TEXTS = [
    "fuck you idiot",
    "you stupid damn idiot",
    "shit, what the hell is this",
    "go to hell you fuck",
    "damn stupid idiot shit",
    "what a stupid fucking idea",
]
CLEAN_TEXTS = [
    "The library opens at nine in the morning",
    "She walked to the station",
    "Our team spent the afternoon reviewing the plan",
    "The weather was pleasant today",
    "He read a book about gardens",
    "They cooked dinner together",
]


def tiny_world(folder: Path) -> dict:
    """A sweep config's model, SAE and latents: a tiny GPT-2 and an SAE written under ``folder``."""
    lm = tiny_gpt2()
    lm.model.save_pretrained(folder / "m")
    lm.tokenizer.save_pretrained(folder / "m")
    return {"model": str(folder / "m"), "sae": str(write_sae(folder / "sae", lm.d_model)), "features": [1, 2, 3]}


def latent_detector(lm: LoadedModel, sae_dir: Path, latents: list[int], pooling: str = "max") -> dict:
    """A discovery-style logistic detector over ``latents`` (features.json ``detector`` schema), for tests."""
    from saedetox.discover.rank_stats import text_stats
    from saedetox.methods.meandiff import fit_logistic_detector
    from saedetox.sae.load import load_sae

    sae = load_sae(str(sae_dir), model_uses_layernorm=lm.uses_layernorm)
    tox = text_stats(lm, sae, TOXIC_TEXTS).max_act[:, latents]
    cln = text_stats(lm, sae, CLEAN_TEXTS).max_act[:, latents]
    return fit_logistic_detector(tox, cln, "latents", pooling)


def run_cli(argv: list, capsys) -> tuple[int, str, str]:
    """Run ``saedetox ARGV`` in-process (items turned into strings): (exit status, stdout, stderr)."""
    with pytest.raises(SystemExit) as ex:
        main([str(a) for a in argv])
        sys.exit(0)
    out = capsys.readouterr()
    return int(ex.value.code or 0), out.out, out.err


def snapshot(*roots: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``roots`` with its size and modification time (what a refusal must not change)."""
    out = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                p = Path(dirpath) / name
                st = p.stat()
                out[str(p)] = (st.st_size, st.st_mtime_ns if p.is_file() else 0)
    return out


def deny_reading(monkeypatch, target: Path) -> None:
    """Reading ``target`` raises PermissionError (the tests run as root, so chmod cannot make it unreadable)."""
    import errno
    import pathlib

    real = pathlib.Path.read_text

    def read_text(self, *a, **kw):
        if self == target:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real(self, *a, **kw)

    monkeypatch.setattr(pathlib.Path, "read_text", read_text)


#: prompts of mixed length and toxicity, and latents of the test SAE, shared by the sampling tests
SAMPLING_PROMPTS = [
    "The library opens at nine in the morning",
    "She walked",
    "Our team spent the afternoon reviewing",
    "you stupid idiot",
    "what a lovely day",
]
SAMPLING_LATENTS = [1, 5, 7, 12]
