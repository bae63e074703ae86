"""Load any Hugging Face causal LM; resolve TransformerLens hook names; capture activations.

Hook names follow TransformerLens (as SAE-Lens metadata does):

* ``blocks.{L}.hook_resid_pre``  = input of decoder layer L (HF ``hidden_states[L]``);
* ``blocks.{L}.hook_resid_post`` = output of decoder layer L (before the final norm, also
  for the last layer, unlike HF ``hidden_states[-1]``);
* ``blocks.{L}.hook_attn_out`` / ``hook_mlp_out`` = what the attention / MLP sub-block adds
  to the residual stream (after Gemma-2's post-norms).

Decoder layers are found by structure (the ``nn.ModuleList`` holding ``num_hidden_layers``
blocks), sub-blocks by attribute name with class-name fallbacks, so GPT-2, GPT-NeoX,
Llama / Mistral / Qwen2 and Gemma / Gemma-2 work without a per-model table.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from saedetox.errors import SaedetoxError

HOOK_RE = re.compile(r"^blocks\.(\d+)\.hook_(resid_pre|resid_post|attn_out|mlp_out)$")
HookKind = Literal["resid_pre", "resid_post", "attn_out", "mlp_out"]
REFERENCE_NAME = "reference"

_ATTN_NAMES = ("self_attn", "attn", "attention", "self_attention")
_MLP_NAMES = ("mlp", "feed_forward", "ffn")


def reference_model_dir() -> Path:
    return Path(__file__).resolve().parent / "assets" / "reference" / "lm"


@dataclass(frozen=True)
class HookSite:
    """Where a TL hook name lives in an HF model."""

    name: str
    layer: int
    kind: HookKind
    module: nn.Module
    when: Literal["pre", "post"]  # forward pre-hook on the module's input, or forward hook on its output


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
        return any(isinstance(m, nn.LayerNorm) for m in self.layers[0].modules())

    def hook_names(self) -> list[str]:
        out = []
        for layer in range(self.n_layers):
            for kind in ("resid_pre", "resid_post", "attn_out", "mlp_out"):
                name = f"blocks.{layer}.hook_{kind}"
                try:
                    self.site(name)
                except SaedetoxError:
                    continue
                out.append(name)
        return out

    def site(self, hook: str) -> HookSite:
        """Resolve a TL hook name to a module hook, or fail with one clear line."""
        if hook in self._sites:
            return self._sites[hook]
        m = HOOK_RE.match(hook)
        if not m:
            raise SaedetoxError(
                f"Unknown hook '{hook}': use blocks.L.hook_resid_pre, hook_resid_post, hook_attn_out or hook_mlp_out."
            )
        layer, kind = int(m.group(1)), m.group(2)
        if layer >= self.n_layers:
            raise SaedetoxError(
                f"Hook '{hook}' names layer {layer}, but {self.name} has {self.n_layers} layers "
                f"(0..{self.n_layers - 1})."
            )
        block = self.layers[layer]
        if kind == "resid_pre":
            site = HookSite(hook, layer, "resid_pre", block, "pre")
        elif kind == "resid_post":
            site = HookSite(hook, layer, "resid_post", block, "post")
        else:
            site = HookSite(hook, layer, kind, _sub_block_output(block, kind, hook), "post")  # type: ignore[arg-type]
        self._sites[hook] = site
        return site

    @property
    def max_positions(self) -> int | None:
        cfg = self.model.config
        return getattr(cfg, "n_positions", None) or getattr(cfg, "max_position_embeddings", None)

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


def _sub_block_output(block: nn.Module, kind: str, hook: str) -> nn.Module:
    children = dict(block.named_children())
    if "pre_feedforward_layernorm" in children:  # Gemma-2/3 sandwich norms: output after the post-norm
        name = "post_attention_layernorm" if kind == "attn_out" else "post_feedforward_layernorm"
        if name in children:
            return children[name]
    names = _ATTN_NAMES if kind == "attn_out" else _MLP_NAMES
    for name in names:
        if name in children:
            return children[name]
    token = "attention" if kind == "attn_out" else "mlp"
    for child in children.values():
        if token in type(child).__name__.lower():
            return child
    raise SaedetoxError(f"Hook '{hook}' is not available in this architecture ({type(block).__name__}).")


def find_layers(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The ModuleList of decoder layers, found by structure."""
    n = getattr(model.config, "num_hidden_layers", None) or getattr(model.config, "n_layer", None)
    best: tuple[str, nn.ModuleList] | None = None
    for path, mod in model.named_modules():
        if isinstance(mod, nn.ModuleList) and len(mod) == n and len(mod) > 0:
            if any(True for _ in mod[0].children()):
                if best is None or path.count(".") < best[0].count("."):
                    best = (path, mod)
    if best is None:
        raise SaedetoxError(
            f"Could not find the decoder layers of {type(model).__name__}; it is not a supported causal LM."
        )
    return best


_FAMILIES = {
    "gpt2": "gpt2",
    "gpt_neox": "gpt_neox",
    "llama": "llama",
    "mistral": "llama",
    "qwen2": "llama",
    "qwen3": "llama",
    "gemma": "gemma",
    "gemma2": "gemma",
    "gemma3_text": "gemma",
}


def wrap_model(model: nn.Module, tokenizer: Any, name: str = "model") -> LoadedModel:
    """Wrap an already-built HF model (e.g. a random-init one in tests)."""
    path, layers = find_layers(model)
    mt = getattr(model.config, "model_type", "unknown")
    if tokenizer is not None and tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    return LoadedModel(model, tokenizer, name, layers, path, _FAMILIES.get(mt, mt))


def _dtype(name: str | torch.dtype, device: torch.device) -> torch.dtype:
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
        raise SaedetoxError(f"Device '{name}' requested but no CUDA GPU is available; use --device cpu.")
    return dev


def load_model(name_or_path: str, dtype: str | torch.dtype = "auto", device: str = "auto") -> LoadedModel:
    """Load an HF causal LM by hub name or local directory (``reference`` = the committed world)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dev = resolve_device(device)
    dt = _dtype(dtype, dev)
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
        tok = AutoTokenizer.from_pretrained(source, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dt, **kwargs)
    except (OSError, ValueError) as err:
        if kwargs:
            raise SaedetoxError(f"Could not load the model in {source}: {str(err).splitlines()[0]}") from None
        raise SaedetoxError(
            f"Could not load '{source}' from the Hugging Face hub (no network or unknown name); "
            "download it where there is network and pass the local directory (save_pretrained), "
            "or set HF_HUB_OFFLINE=1 with a filled HF cache."
        ) from None
    model.to(dev)
    return wrap_model(model, tok, name=name_or_path)


# --------------------------------------------------------------------------- tokenising


def tokenize_batch(
    tokenizer: Any,
    texts: Sequence[str],
    prepend_bos: bool = True,
    padding_side: str = "left",
    device: torch.device | str = "cpu",
    max_length: int | None = None,
    truncation_side: str = "right",
) -> dict[str, torch.Tensor]:
    """Token ids + attention mask for a batch, BOS prepended once when asked, padded.

    Longer rows are cut to ``max_length``: at the end (``right``) or, for prompts, at the start
    (``left``, keeping a prepended BOS first).
    """
    if isinstance(texts, str):
        texts = [texts]
    if not texts:
        raise SaedetoxError("No prompts given.")
    for t in texts:
        if not isinstance(t, str) or not t.strip():
            raise SaedetoxError("Empty prompt: every prompt must contain some text.")
    enc = tokenizer(list(texts), add_special_tokens=True)["input_ids"]
    bos = tokenizer.bos_token_id
    rows = []
    for ids in enc:
        ids = list(ids)
        if prepend_bos and bos is not None and (not ids or ids[0] != bos):
            ids = [bos] + ids
        if max_length is not None and len(ids) > max_length:
            if truncation_side == "left":
                head = ids[:1] if prepend_bos and bos is not None and ids[0] == bos else []
                ids = head + ids[len(ids) - (max_length - len(head)) :]
            else:
                ids = ids[:max_length]
        rows.append(ids)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    width = max(len(r) for r in rows)
    ids_t = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if padding_side == "left":
            ids_t[i, width - len(r) :] = torch.tensor(r)
            mask[i, width - len(r) :] = 1
        else:
            ids_t[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
    return {"input_ids": ids_t.to(device), "attention_mask": mask.to(device)}


# --------------------------------------------------------------------------- hooks + capture


def hidden_from_output(output: Any) -> torch.Tensor:
    """Decoder layers return a tensor (new transformers) or a tuple whose first item is it."""
    return output[0] if isinstance(output, tuple) else output


def replace_output(output: Any, hidden: torch.Tensor) -> Any:
    if isinstance(output, tuple):
        return (hidden,) + tuple(output[1:])
    return hidden


def hidden_from_inputs(args: tuple, kwargs: dict) -> torch.Tensor:
    return args[0] if args else kwargs["hidden_states"]


def replace_inputs(args: tuple, kwargs: dict, hidden: torch.Tensor) -> tuple[tuple, dict]:
    if args:
        return (hidden,) + tuple(args[1:]), kwargs
    kwargs = dict(kwargs)
    kwargs["hidden_states"] = hidden
    return args, kwargs


class _StopForward(Exception):
    pass


def register_reader(site: HookSite, fn) -> torch.utils.hooks.RemovableHandle:
    """Call ``fn(hidden)`` with the activation at ``site`` (read-only)."""
    if site.when == "pre":
        return site.module.register_forward_pre_hook(lambda m, a, k: fn(hidden_from_inputs(a, k)), with_kwargs=True)
    return site.module.register_forward_hook(lambda m, a, o: fn(hidden_from_output(o)))


@torch.no_grad()
def run_to_hooks(lm: LoadedModel, batch: dict[str, torch.Tensor], hooks: Sequence[str]) -> dict[str, torch.Tensor]:
    """Activations at ``hooks`` for one tokenised batch; the forward stops after the deepest one."""
    sites = [lm.site(h) for h in hooks]
    deepest = max(sites, key=lambda s: (s.layer, s.when == "post"))
    store: dict[str, torch.Tensor] = {}

    def make(site: HookSite):
        def fn(hidden: torch.Tensor) -> None:
            store[site.name] = hidden.detach()
            if site is deepest and len(store) == len(sites):
                raise _StopForward

        return fn

    handles = [register_reader(s, make(s)) for s in sites]
    try:
        lm.model(**batch, use_cache=False)
    except _StopForward:
        pass
    finally:
        for h in handles:
            h.remove()
    return store


def iter_activations(
    lm: LoadedModel,
    texts: Sequence[str],
    hooks: Sequence[str],
    batch_size: int = 16,
    prepend_bos: bool = True,
    padding_side: str = "right",
    max_length: int | None = 256,
) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]]:
    """Yield ``({hook: acts[B,T,d]}, attention_mask[B,T], input_ids[B,T])`` batch by batch.

    The forward pass stops after the deepest requested hook, so capturing an early layer
    costs only the layers up to it.
    """
    for start in range(0, len(texts), batch_size):
        batch = tokenize_batch(
            lm.tokenizer, texts[start : start + batch_size], prepend_bos, padding_side, lm.device, max_length
        )
        if padding_side == "left":
            batch["position_ids"] = (batch["attention_mask"].cumsum(-1) - 1).clamp_min(0)
        acts = run_to_hooks(lm, batch, hooks)
        batch.pop("position_ids", None)
        yield acts, batch["attention_mask"], batch["input_ids"]


def capture(
    lm: LoadedModel,
    texts: Sequence[str],
    hook: str,
    batch_size: int = 16,
    prepend_bos: bool = True,
    max_length: int | None = 256,
) -> list[torch.Tensor]:
    """Per-text activations ``[T_i, d]`` (padding removed) at one hook, in float32 on CPU."""
    out: list[torch.Tensor] = []
    for acts, mask, _ in iter_activations(lm, texts, [hook], batch_size, prepend_bos, "right", max_length):
        a = acts[hook].float().cpu()
        for i in range(a.shape[0]):
            out.append(a[i, : int(mask[i].sum())])
    return out
