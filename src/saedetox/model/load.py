"""Load any Hugging Face causal LM (hub name, local folder or ``reference``) as a :class:`LoadedModel`."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging as hf_logging

from saedetox.errors import SaedetoxError
from saedetox.model import arch, hub
from saedetox.model.adapters import unwrap
from saedetox.model.sites import HOOK_KINDS, HookSite, resolve_site
from saedetox.model.tokens import max_positions, tokenize_batch

REFERENCE_NAME = "reference"


def reference_model_dir() -> Path:
    return Path(__file__).resolve().parents[1] / "assets" / "reference" / "lm"


@dataclass
class LoadedModel:
    """An HF causal LM with its tokenizer and the structure saedetox needs."""

    model: nn.Module
    tokenizer: Any
    name: str
    layers: nn.ModuleList
    layers_path: str
    family: str
    _sites: dict[str, HookSite] = field(default_factory=dict, repr=False)

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def d_model(self) -> int:
        cfg = self.model.config
        return int(getattr(cfg, "hidden_size", None) or cfg.n_embd)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def uses_layernorm(self) -> bool:
        """True for LayerNorm models (GPT-2, NeoX), False for RMSNorm ones (Llama, Gemma)."""
        return arch.uses_layernorm(self.layers[0])

    def hook_names(self) -> list[str]:
        out = []
        for layer in range(self.n_layers):
            for kind in HOOK_KINDS:
                name = f"blocks.{layer}.hook_{kind}"
                try:
                    self.site(name)
                except SaedetoxError:
                    continue
                out.append(name)
        return out

    def site(self, hook: str) -> HookSite:
        """Resolve a TL hook name to a module hook, or fail with one clear line."""
        if hook not in self._sites:
            self._sites[hook] = resolve_site(hook, self.layers, self.name)
        return self._sites[hook]

    @property
    def max_positions(self) -> int | None:
        return max_positions(self.model.config)

    def encode_prompts(
        self, texts: Sequence[str], prepend_bos: bool = True, padding_side: str = "left", max_length: int | None = None
    ) -> dict[str, torch.Tensor]:
        """Tokenise a batch with padding (left by default) and optional BOS, on the model's device."""
        return tokenize_batch(
            self.tokenizer,
            texts,
            prepend_bos=prepend_bos,
            padding_side=padding_side,
            device=self.device,
            max_length=max_length,
        )


def wrap_model(model: nn.Module, tokenizer: Any, name: str = "model") -> LoadedModel:
    """Wrap an already-built HF model (e.g. a random-init one in tests)."""
    path, layers = arch.find_layers(model)
    if tokenizer is not None and tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    return LoadedModel(model, tokenizer, name, layers, path, arch.family(model))


def parse_dtype(name: str | torch.dtype, device: torch.device) -> torch.dtype:
    """A dtype name (``auto``: float32 on CPU, bfloat16 on GPU) as a torch dtype, or one clear error."""
    if isinstance(name, torch.dtype):
        return name
    if name == "auto":
        return torch.float32 if device.type == "cpu" else torch.bfloat16
    table = {
        "float32": torch.float32,
        "fp32": torch.float32,
        "float16": torch.float16,
        "fp16": torch.float16,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
    }
    if name not in table:
        raise SaedetoxError(f"Unknown dtype '{name}': use auto, float32, float16 or bfloat16.")
    return table[name]


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise SaedetoxError(f"Unknown device '{name}': use auto, cpu, cuda or cuda:N.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SaedetoxError(f"Device '{name}' requested but no CUDA GPU is available; use the cpu device.")
    return dev


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """No transformers progress bars ("Loading weights") or info/warning logs inside the block; restored after."""
    bars, level = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def as_loaded_model(model: Any) -> LoadedModel:
    """``model`` as a :class:`LoadedModel`: one already, or an nnsight ``LanguageModel`` / TransformerLens
    ``TransformerBridge`` (the HF model inside, :mod:`saedetox.model.adapters`); anything else is refused.

    The same wrapper object always gives the same :class:`LoadedModel`, so steering attached through
    one call is seen by the next.
    """
    if isinstance(model, LoadedModel):
        return model
    if isinstance(model, (str, os.PathLike)):
        return load_model(str(model))
    cached = vars(model).get(_LOADED) if hasattr(model, "__dict__") else None
    if isinstance(cached, LoadedModel):
        return cached
    inner = unwrap(model)
    if inner is None:
        raise SaedetoxError(
            f"Expected a model (a LoadedModel, an HF model name or folder, an nnsight LanguageModel or a "
            f"TransformerBridge), got {type(model).__name__}."
        )
    lm = wrap_model(inner.model, inner.tokenizer, name=inner.name)
    vars(model)[_LOADED] = lm
    return lm


_LOADED = "_saedetox_loaded_model"  # where a wrapper object keeps its LoadedModel


def load_model(name_or_path: Any, dtype: str | torch.dtype = "auto", device: str = "auto") -> LoadedModel:
    """Load an HF causal LM by hub name or local directory (``reference`` = the committed world), quietly.

    ``dtype`` ``auto`` is float32 on CPU and bfloat16 on GPU; ``device`` ``auto`` a GPU when there is one.
    A model already in memory (an nnsight ``LanguageModel``, a ``TransformerBridge``, a :class:`LoadedModel`)
    is used as it is, on its own device and dtype (:func:`as_loaded_model`).
    """
    if not isinstance(name_or_path, (str, os.PathLike)):
        return as_loaded_model(name_or_path)
    name_or_path = str(name_or_path)
    dev = resolve_device(device)
    dt = parse_dtype(dtype, dev)
    source = str(reference_model_dir()) if name_or_path == REFERENCE_NAME else name_or_path
    local = Path(source).expanduser()
    if local.exists():
        if not (local / "config.json").exists():
            raise SaedetoxError(f"{local} is not a Hugging Face model directory (no config.json).")
        kwargs: dict[str, Any] = {"local_files_only": True}
        source = str(local)
    elif source.startswith((".", "/", "~")) or os.sep in source and source.count("/") > 1:
        raise SaedetoxError(f"Model directory {source} does not exist.")
    else:
        kwargs = {}
    try:
        with quiet_transformers():
            tok = AutoTokenizer.from_pretrained(source, **kwargs)
            model = AutoModelForCausalLM.from_pretrained(source, dtype=dt, **kwargs)
    except SafetensorError as err:
        raise SaedetoxError(
            f"A weight file of {source} is unreadable or truncated ({str(err).splitlines()[0]}); "
            "re-save or re-download the model."
        ) from None
    except (OSError, ValueError) as err:
        if kwargs:
            raise SaedetoxError(f"Could not load the model in {source}: {str(err).splitlines()[0]}") from None
        if hub.offline():
            where = hub.missing_file(err)
            what = f": {where[1]} is missing" if where else f" ({str(err).splitlines()[0] if str(err) else ''})"
            raise SaedetoxError(
                f"'{source}' is not complete in the local Hugging Face cache {hub.cache_dir()} and offline mode "
                f"is on{what}. Download it where there is network and copy the cache here, or pass a local "
                "directory (save_pretrained)."
            ) from None
        raise SaedetoxError(
            f"Could not load '{source}' from the Hugging Face hub (no network or unknown name); "
            "download it where there is network and pass the local directory (save_pretrained), "
            "or set HF_HUB_OFFLINE=1 with a filled HF cache."
        ) from None
    check_tokenizer(tok, model.config, source)
    model.to(dev)
    return wrap_model(model, tok, name=name_or_path)


def check_tokenizer(tokenizer: Any, config: Any, source: str) -> None:
    """Refuse a tokenizer far smaller than the model's vocabulary: its files are missing, not its words.

    A Gemma checkpoint whose ``tokenizer.json`` is missing still loads, with a built-in fallback
    of a few tokens that reads every word as ``<unk>``: sampling and scoring would then run on
    nonsense without a single error. Real checkpoints pad the embedding by at most a few hundred
    rows (OPT, Qwen2, Phi-3, Pythia), far from half of it.
    """
    vocab = getattr(config, "vocab_size", None)
    if tokenizer is None or not vocab or len(tokenizer) * 2 >= int(vocab):
        return
    raise SaedetoxError(
        f"The tokenizer of '{source}' has {len(tokenizer)} tokens but the model's vocabulary has {vocab}: "
        "its tokenizer files are missing or incomplete (e.g. tokenizer.json), so text would be read as unknown "
        "tokens. Download the tokenizer files again."
    )
