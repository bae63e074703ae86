"""Models researchers already hold: an nnsight ``LanguageModel`` or a TransformerLens ``TransformerBridge``.

Both wrap a Hugging Face causal LM; :func:`unwrap` hands back that model and its tokenizer, which
saedetox steers as it steers any HF model. A TransformerLens ``HookedTransformer`` (or
``HookedSAETransformer``) re-implements the model with its own weights layout, so it is refused
with one line saying what to pass instead. Detection goes by class name and module, so nnsight and
TransformerLens are imported only by the user who built such an object.

* **nnsight**: the ``LanguageModel`` runs the HF module it wraps (``._module``); hooks saedetox adds
  to that module also act inside the user's nnsight traces. One loaded by name is dispatched
  (its weights loaded) first.
* **TransformerBridge**: the bridge swaps the HF model's submodules for its own wrapper components
  (each keeps the HF one as ``original_component``). saedetox runs a view of the HF model with the
  original modules put back: a new module tree for the containers only, sharing every parameter
  (no weights copied). Steering acts on that view, not on the bridge's own forward.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from torch import nn

from saedetox.errors import SaedetoxError

#: TransformerLens classes that re-implement the model instead of wrapping the HF one
HOOKED_CLASSES = ("HookedTransformer", "HookedSAETransformer", "HookedEncoder", "HookedEncoderDecoder")


@dataclass
class Unwrapped:
    """The HF model inside a wrapper, its tokenizer, and a name for it."""

    model: nn.Module
    tokenizer: Any
    name: str
    wrapper: str  # "nnsight" or "TransformerBridge"


def _classes(obj: Any) -> list[tuple[str, str]]:
    return [(c.__module__ or "", c.__name__) for c in type(obj).__mro__]


def _from(obj: Any, package: str, names: tuple[str, ...]) -> bool:
    return any(mod.split(".")[0] == package and name in names for mod, name in _classes(obj))


def _is_nnsight(obj: Any) -> bool:
    return any(mod.split(".")[0] == "nnsight" for mod, _ in _classes(obj)) and "_module" in getattr(obj, "__dict__", {})


def _is_bridge(obj: Any) -> bool:
    return _from(obj, "transformer_lens", ("TransformerBridge",))


def _is_hooked(obj: Any) -> bool:
    return _from(obj, "transformer_lens", HOOKED_CLASSES) or _from(obj, "sae_lens", HOOKED_CLASSES)


def _hf_name(model: nn.Module, fallback: str) -> str:
    cfg = getattr(model, "config", None)
    name = getattr(cfg, "_name_or_path", None) or getattr(cfg, "name_or_path", None)
    return str(name) if name else fallback


def refuse_hooked(obj: Any) -> None:
    """One line for a TransformerLens ``HookedTransformer``: what to pass instead."""
    if _is_hooked(obj):
        name = getattr(getattr(obj, "cfg", None), "model_name", None)
        which = f" '{name}'" if name else ""
        raise SaedetoxError(
            f"A TransformerLens {type(obj).__name__} re-implements the model{which} outside Hugging Face; "
            "saedetox steers the HF model itself: pass the HF model name or folder (load_model), a "
            "TransformerBridge, or an nnsight LanguageModel."
        )


def unwrap(obj: Any) -> Unwrapped | None:
    """The HF model and tokenizer inside an nnsight ``LanguageModel`` or a ``TransformerBridge``; None otherwise.

    A ``HookedTransformer`` is refused with one line.
    """
    refuse_hooked(obj)
    if _is_nnsight(obj):
        if vars(obj).get("dispatched") is False:
            obj.dispatch()  # nnsight loads a model by name lazily (meta tensors) until it is dispatched
        model = vars(obj)["_module"]
        tok = vars(obj).get("tokenizer")
        wrapper = "nnsight"
    elif _is_bridge(obj):
        model = unbridged(obj.original_model)
        tok = getattr(obj, "tokenizer", None)
        wrapper = "TransformerBridge"
    else:
        return None
    if not isinstance(model, nn.Module) or not hasattr(model, "config"):
        raise SaedetoxError(f"The {wrapper} model wraps no Hugging Face model; pass the HF model name or folder.")
    if tok is None:
        raise SaedetoxError(f"The {wrapper} model has no tokenizer; build it with tokenizer=... and pass it again.")
    return Unwrapped(model, tok, _hf_name(model, type(model).__name__), wrapper)


# --------------------------------------------------------------------------- TransformerBridge


def _bridge_inner(module: nn.Module) -> nn.Module | None:
    """The HF module a TransformerLens bridge component wraps, or None for any other module."""
    if not type(module).__module__.startswith("transformer_lens."):
        return None
    inner = getattr(module, "original_component", None)
    return inner if isinstance(inner, nn.Module) else None


def unbridged(module: nn.Module) -> nn.Module:
    """``module`` with every bridge component replaced by the HF module it wraps.

    A module whose subtree holds no bridge component is returned as is; a container that holds one
    is copied shallowly (same parameters and buffers, its own children and no hooks), so the
    bridge itself is left untouched.
    """
    inner = _bridge_inner(module)
    if inner is not None:
        return unbridged(inner)
    children = {name: unbridged(child) for name, child in module._modules.items() if child is not None}
    if all(children[n] is module._modules[n] for n in children):
        return module
    clone = module.__class__.__new__(module.__class__)
    clone.__dict__ = dict(module.__dict__)
    clone._modules = {**module._modules, **children}
    clone._parameters = dict(module._parameters)
    clone._buffers = dict(module._buffers)
    for key, value in module.__dict__.items():
        if "hooks" in key and isinstance(value, dict):  # the forward/backward/state-dict hook tables
            clone.__dict__[key] = OrderedDict()
    return clone
