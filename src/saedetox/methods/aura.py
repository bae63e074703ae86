"""The ``aura`` baseline: AurA (Suau et al., ICML 2024), as apple/ml-aura publishes it.

*Experts* are the output channels of every linear layer of every MLP (GPT-2: ``c_fc`` — the
pre-GELU value — and ``c_proj``, as in the published config; other layouts: the analogue,
:data:`saedetox.model.arch.MLP_LINEARS`). Each expert's response to a text is its **maximum over
the text's tokens** (every token of the tokenizer's own encoding, so BOS counts where the
tokenizer adds one, as in the published code; padding never counts). An expert's AUROC at
telling toxic from clean texts (toxic = positive, ties count half) gives its factor
``1 − 2(AUROC − 0.5)`` where AUROC > 0.5 and 1 elsewhere; the method multiplies each module's
output by its factors (a forward hook on the same modules), at every position, prompt and
generated tokens alike.

Differences from the published code: the texts are the ParaDetox discovery pairs (toxic sides
vs neutral paraphrases, :mod:`saedetox.methods.contrast`), not 128 + 128 random Jigsaw
comments; batches are right-padded (the published left padding shifts GPT-2's absolute
positions, so pooled responses depended on the batch); the module lists of non-GPT-2 layouts
are our analogue of GPT-2's (all of the MLP's linear layers).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from saedetox.discover.rank_stats import auroc_per_latent
from saedetox.errors import SaedetoxError
from saedetox.methods.base import Method
from saedetox.methods.contrast import ContrastData, Reducer, cached, pooled_outputs
from saedetox.model.arch import mlp_linears
from saedetox.model.load import LoadedModel

MAX_LENGTH = 128  # tokens per text (the published seq_len)
RESPONSE_BUDGET = 2**29  # floats of responses held at once (2 GiB); more modules take more passes
RESPONSES = "aura-responses"  # ContrastData.cache key of responses gathered by a shared pass


def expert_modules(lm: LoadedModel, relative: Sequence[str] | None = None) -> list[tuple[str, nn.Module]]:
    """``[(full module name, module)]``: every layer's MLP linear layers, or the ``relative`` paths given."""
    names = {id(m): n for n, m in lm.model.named_modules()}
    out = []
    for block in lm.layers:
        if relative is None:
            pairs = mlp_linears(block)
        else:
            pairs = [(p, block.get_submodule(p)) for p in relative]
        out += [(names[id(m)], m) for _, m in pairs]
    return out


def masked_max(out: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Max over the real tokens: ``out`` [B, T, U] (or OPT's flattened [B*T, U]), ``mask`` [B, T] bool → [B, U]."""
    o = out.float().reshape(*mask.shape, -1).masked_fill(~mask[..., None], float("-inf"))
    return o.amax(1)


def max_responses(
    lm: LoadedModel,
    texts: Sequence[str],
    modules: Sequence[tuple[str, nn.Module]],
    batch_size: int = 32,
    max_length: int = MAX_LENGTH,
) -> dict[str, torch.Tensor]:
    """Per module: each text's max-pooled output channels, ``[n_texts, units]`` float32 on CPU (in ``texts`` order)."""
    return pooled_outputs(lm, texts, response_reducers(modules), batch_size, max_length)


def response_reducers(modules: Sequence[tuple[str, nn.Module]]) -> dict[str, Reducer]:
    """AurA's responses as :func:`~saedetox.methods.contrast.pooled_outputs` reducers (max over real tokens)."""
    return {name: (module, masked_max) for name, module in modules}


def fits_one_pass(lm: LoadedModel, data: ContrastData, relative: Sequence[str] | None = None) -> bool:
    """Whether every expert's responses fit one pass's memory budget (:data:`RESPONSE_BUDGET`)."""
    units = sum(_units(m) for _, m in expert_modules(lm, relative))
    return units * max(1, len(data.toxic) + len(data.clean)) <= RESPONSE_BUDGET


def _units(m: nn.Module) -> int:
    return int(getattr(m, "out_features", 0) or m.weight.shape[-1])  # Conv1D: [in, out]


def factors_from_auroc(auc: torch.Tensor) -> torch.Tensor:
    """AurA's rule: 1 − 2(AUROC − 0.5) where AUROC > 0.5, else exactly 1."""
    return torch.where(auc > 0.5, 1.0 - 2.0 * (auc - 0.5), torch.ones_like(auc))


def aura_aurocs(lm: LoadedModel, data: ContrastData, relative: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    """Per module: each expert's AUROC (max-pooled response, toxic vs clean).

    Responses a shared pass already gathered (:mod:`saedetox.methods.shared_pass`) are used as they are.
    """
    modules = expert_modules(lm, relative)
    if relative is None and all((RESPONSES, id(lm.model), side) in data.cache for side in ("toxic", "clean")):
        tox, cln = (data.cache[(RESPONSES, id(lm.model), side)] for side in ("toxic", "clean"))
        return {n: torch.from_numpy(auroc_per_latent(tox[n].numpy(), cln[n].numpy())) for n, _ in modules}
    units = [_units(m) for _, m in modules]
    per_pass = max(1, RESPONSE_BUDGET // max(1, len(data.toxic) + len(data.clean)))
    out: dict[str, torch.Tensor] = {}
    start = 0
    while start < len(modules):  # as many modules per forward pass as the memory budget allows
        end, total = start, 0
        while end < len(modules) and (end == start or total + units[end] <= per_pass):
            total += units[end]
            end += 1
        group = modules[start:end]
        tox = max_responses(lm, data.toxic, group)
        cln = max_responses(lm, data.clean, group)
        for name, _ in group:
            out[name] = torch.from_numpy(auroc_per_latent(tox[name].numpy(), cln[name].numpy()))  # float64
        start = end
    return out


def aura_factors(lm: LoadedModel, data: ContrastData, relative: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    """Per module (full name): AurA's dampening factor for each of its output channels."""
    return {n: factors_from_auroc(a) for n, a in aura_aurocs(lm, data, relative).items()}


@contextmanager
def aura_hooks(lm: LoadedModel, factors: dict[str, torch.Tensor]) -> Iterator[None]:
    """Multiply each named module's output by its factors while active (forward hooks)."""
    handles = []
    try:
        for name, f in factors.items():
            mod = lm.model.get_submodule(name)
            f = f.to(lm.device, lm.dtype)
            handles.append(mod.register_forward_hook(lambda m, a, o, f=f: o * f))
        yield
    finally:
        for h in handles:
            h.remove()


@contextmanager
def fold_aura(lm: LoadedModel, factors: dict[str, torch.Tensor]) -> Iterator[None]:
    """The same dampening written into the weights while active: each expert's output channel of a linear
    layer scaled (weight and bias), restored on exit. What :func:`aura_hooks` computes, without hooks."""
    saved: list[tuple[torch.Tensor, torch.Tensor]] = []
    try:
        with torch.no_grad():
            for name, f in factors.items():
                mod = lm.model.get_submodule(name)
                dim = _output_dim(mod)
                for p in (mod.weight, getattr(mod, "bias", None)):
                    if p is None:
                        continue
                    saved.append((p, p.detach().clone()))
                    shape = [1] * p.dim()
                    shape[dim if p.dim() > 1 else 0] = -1
                    p.mul_(f.to(p.device, p.dtype).reshape(shape))
        yield
    finally:
        with torch.no_grad():
            for p, old in reversed(saved):
                p.copy_(old)


def _output_dim(mod: nn.Module) -> int:
    """Which weight dimension holds a linear layer's output channels (Linear: 0; GPT-2's Conv1D: 1)."""
    if isinstance(mod, nn.Linear):
        return 0
    if type(mod).__name__ == "Conv1D" and hasattr(mod, "nf"):
        return 1
    raise SaedetoxError(f"AurA cannot fold its dampening into a {type(mod).__name__} (only linear layers).")


def aura_summary(factors: dict[str, torch.Tensor], data: ContrastData | None = None) -> dict[str, Any]:
    """``config.aura`` for metrics: how many experts are dampened, of how many, per module, and the smallest factor."""
    out: dict[str, Any] = {
        "n_dampened": sum(int((f < 1).sum()) for f in factors.values()),
        "n_units": sum(f.numel() for f in factors.values()),
        "modules": {n: int((f < 1).sum()) for n, f in factors.items()},
        "min_factor": round(float(min(f.min() for f in factors.values())), 6),
        "pooling": "max",
    }
    if data is not None:
        out["n_texts"] = {"toxic": len(data.toxic), "clean": len(data.clean)}
    return out


def aura_method(lm: LoadedModel, data: ContrastData, relative: Sequence[str] | None = None) -> Method:
    key = ("aura", id(lm.model), tuple(relative) if relative else None)
    factors = cached(data, key, lambda: aura_factors(lm, data, relative))
    return Method(
        name="aura",
        context=lambda: aura_hooks(lm, factors),
        weights=lambda: fold_aura(lm, factors),
        details={"aura": aura_summary(factors, data)},
    )
