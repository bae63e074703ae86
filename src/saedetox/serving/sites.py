"""Where the residual stream lives in a vLLM model, and how to read and replace it.

vLLM's decoder layers come in two shapes. GPT-2-style blocks take and return the stream
itself. Llama/Gemma-style layers fuse the residual add into the next norm: they take
``(positions, hidden_states, residual)`` and return ``(hidden_states, residual)``, and the stream
is ``hidden_states + residual`` (``residual`` is None before the first layer). The SAE must read
that sum; an edit x → x + Δ is written back as ``hidden_states + Δ``.

``blocks.L.hook_resid_pre`` is the stream entering decoder layer L (a forward pre-hook),
``blocks.L.hook_resid_post`` the stream leaving it (a forward hook).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from saedetox.errors import SaedetoxError

Edit = Callable[[torch.Tensor], torch.Tensor]


def decoder_layers(model: nn.Module, n_layers: int) -> nn.ModuleList:
    """The model's list of ``n_layers`` decoder layers (``model.layers``, ``transformer.h``, …)."""
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == n_layers and name.split(".")[-1] in ("layers", "h"):
            return module
    raise SaedetoxError(
        f"Found no list of {n_layers} decoder layers in {type(model).__name__}: this architecture is not "
        "supported by the vLLM backend yet (pipeline parallelism is not supported either)."
    )


def _arg_slots(layer: nn.Module) -> tuple[int, int | None]:
    """Positional indices of ``hidden_states`` and ``residual`` in the layer's forward."""
    names = list(inspect.signature(layer.forward).parameters)
    hidden = names.index("hidden_states") if "hidden_states" in names else 0
    residual = names.index("residual") if "residual" in names else None
    return hidden, residual


def edit_stream(layer: nn.Module, when: str, edit: Edit) -> RemovableHandle:
    """Replace the stream entering (``pre``) or leaving (``post``) ``layer`` by ``edit(stream)``."""
    if when == "pre":
        h_slot, r_slot = _arg_slots(layer)

        def pre(module: nn.Module, args: tuple, kwargs: dict):
            args = list(args)
            in_args = h_slot < len(args)
            hidden = args[h_slot] if in_args else kwargs["hidden_states"]
            residual = None
            if r_slot is not None:
                residual = args[r_slot] if r_slot < len(args) else kwargs.get("residual")
            stream = hidden if residual is None else hidden + residual
            new = hidden + (edit(stream) - stream) if residual is not None else edit(stream)
            if in_args:
                args[h_slot] = new
            else:
                kwargs["hidden_states"] = new
            return tuple(args), kwargs

        return layer.register_forward_pre_hook(pre, with_kwargs=True)

    def post(module: nn.Module, args: tuple, output):
        if isinstance(output, tuple):
            hidden, residual = output[0], output[1] if len(output) > 1 else None
            if residual is None:
                return (edit(hidden), *output[1:])
            stream = hidden + residual
            return (hidden + (edit(stream) - stream), *output[1:])
        return edit(output)

    return layer.register_forward_hook(post)
