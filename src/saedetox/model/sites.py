"""Hook points: TransformerLens hook names resolved to HF modules, and the one way to hook them.

Hook names follow TransformerLens (as SAE-Lens metadata does):

* ``blocks.{L}.hook_resid_pre``  = input of decoder layer L (HF ``hidden_states[L]``);
* ``blocks.{L}.hook_resid_post`` = output of decoder layer L (before the final norm, also
  for the last layer, unlike HF ``hidden_states[-1]``);
* ``blocks.{L}.hook_attn_out`` / ``hook_mlp_out`` = what the attention / MLP sub-block adds
  to the residual stream (after Gemma-2's post-norms).

Every PyTorch hook saedetox registers goes through :func:`edit_at` (change the hidden state),
:func:`read_at` (look at it) or :func:`observe_calls` (look at a call's arguments). Decoder
layers return a tensor (new transformers) or a tuple whose first item is it; these helpers
handle both.

Hooks that carry per-sequence state from one forward call to the next (a conditional gate, a
running maximum) register with :func:`on_batch_repeat`: a decode loop that encodes each prompt
once and then repeats every row k times (the KV cache, the logits) calls
:func:`repeat_batch_state`, so that state is repeated with the rows instead of reset.
"""

from __future__ import annotations

import re
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from saedetox.errors import SaedetoxError
from saedetox.model.arch import mlp_out_projection, sub_block_output

HOOK_RE = re.compile(r"^blocks\.(\d+)\.hook_(resid_pre|resid_post|attn_out|mlp_out)$")
HOOK_KINDS = ("resid_pre", "resid_post", "attn_out", "mlp_out")
HookKind = Literal["resid_pre", "resid_post", "attn_out", "mlp_out", "mlp_neurons"]


@dataclass(frozen=True)
class HookSite:
    """Where a TL hook name lives in an HF model."""

    name: str
    layer: int
    kind: HookKind
    module: nn.Module
    when: Literal["pre", "post"]  # forward pre-hook on the module's input, or forward hook on its output


def resolve_site(hook: str, layers: nn.ModuleList, model_name: str) -> HookSite:
    """Resolve a TL hook name to a module hook, or fail with one clear line."""
    m = HOOK_RE.match(hook)
    if not m:
        raise SaedetoxError(
            f"Unknown hook '{hook}': use blocks.L.hook_resid_pre, hook_resid_post, hook_attn_out or hook_mlp_out."
        )
    layer, kind = int(m.group(1)), m.group(2)
    if layer >= len(layers):
        raise SaedetoxError(
            f"Hook '{hook}' names layer {layer}, but {model_name} has {len(layers)} layers (0..{len(layers) - 1})."
        )
    block = layers[layer]
    if kind == "resid_pre":
        return HookSite(hook, layer, "resid_pre", block, "pre")
    if kind == "resid_post":
        return HookSite(hook, layer, "resid_post", block, "post")
    return HookSite(hook, layer, kind, sub_block_output(block, kind, hook), "post")  # type: ignore[arg-type]


def mlp_neuron_site(layers: nn.ModuleList, layer: int) -> HookSite:
    """The MLP neuron activations of ``layer``: the input of its output projection (internal, not a user hook)."""
    module = mlp_out_projection(layers[layer])
    return HookSite(f"blocks.{layer}.mlp_neurons", layer, "mlp_neurons", module, "pre")


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


def edit_at(site: HookSite, fn: Callable[[torch.Tensor], torch.Tensor]) -> RemovableHandle:
    """Replace the hidden state at ``site`` by ``fn(hidden)`` on every forward call, until the handle is removed."""
    if site.when == "pre":
        return site.module.register_forward_pre_hook(
            lambda m, a, k: replace_inputs(a, k, fn(hidden_from_inputs(a, k))), with_kwargs=True
        )
    return site.module.register_forward_hook(lambda m, a, o: replace_output(o, fn(hidden_from_output(o))))


def read_at(site: HookSite, fn: Callable[[torch.Tensor], None]) -> RemovableHandle:
    """Call ``fn(hidden)`` with the activation at ``site`` (read-only)."""
    if site.when == "pre":
        return site.module.register_forward_pre_hook(lambda m, a, k: fn(hidden_from_inputs(a, k)), with_kwargs=True)
    return site.module.register_forward_hook(lambda m, a, o: fn(hidden_from_output(o)))


def observe_calls(module: nn.Module, fn: Callable[[tuple, dict], None]) -> RemovableHandle:
    """Call ``fn(args, kwargs)`` before every forward call of ``module`` (e.g. the whole model)."""
    return module.register_forward_pre_hook(lambda m, a, k: fn(a, k), with_kwargs=True)


_REPEATERS: weakref.WeakKeyDictionary[nn.Module, OrderedDict[int, Callable[[int], None]]] = weakref.WeakKeyDictionary()


def on_batch_repeat(model: nn.Module, fn: Callable[[int], None]) -> RemovableHandle:
    """Call ``fn(n)`` whenever a decode loop repeats each row of ``model``'s batch n times (prompt-major)."""
    fns = _REPEATERS.setdefault(model, OrderedDict())  # RemovableHandle keeps a weak reference: not a plain dict
    handle = RemovableHandle(fns)
    fns[handle.id] = fn
    return handle


def repeat_batch_state(model: nn.Module, n: int) -> None:
    """Tell every registered hook of ``model`` that each row of the batch now stands for n rows (prompt-major)."""
    for fn in list(_REPEATERS.get(model, {}).values()):
        fn(n)
