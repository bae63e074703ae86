"""The saedetox worker extension: steering levels installed in a vLLM worker's model.

Installed either by the plugin (``SAEDETOX_LEVELS`` names a levels file, :mod:`saedetox.serving.plugin`)
or explicitly through ``LLM.collective_rpc("saedetox_install", args=(path,))`` with
``worker_extension_cls="saedetox.serving.worker.SaedetoxWorkerExtension"``. Each request names its
level in ``SamplingParams.extra_args["saedetox_level"]`` (default ``off``).

Per forward pass, a pre-hook on the whole model reads the model runner's batch layout (request
ids, query offsets, computed-token counts, prompt lengths, levels) into a :class:`StepInfo`; each
steered decoder layer then edits the flat hidden state through :class:`FlatSteering`. The runner's
``_update_states`` is wrapped so that a request's state is freed when vLLM frees its own.
Runs only in eager mode (hooks are not captured by CUDA graphs or torch.compile).
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn

from saedetox.serving.compiled import LEVEL_KEY, OFF, load_levels_file
from saedetox.serving.flat import FlatSteering, StepInfo
from saedetox.serving.sites import decoder_layers, edit_stream


def _level(request: Any) -> str:
    params = getattr(request, "sampling_params", None)
    extra = getattr(params, "extra_args", None) or {}
    return str(extra.get(LEVEL_KEY, OFF))


def install(runner: Any, path: str) -> FlatSteering:
    """Attach the levels in ``path`` to ``runner.model`` (idempotent per runner)."""
    old = getattr(runner, "_saedetox", None)
    if old is not None:
        for h in old.handles:
            h.remove()
    levels, bos_id = load_levels_file(path)
    model: nn.Module = runner.model
    p = next(model.parameters())
    for ivs in levels.values():
        for iv in ivs:
            iv.to(p.device, p.dtype)
    steering = FlatSteering(levels, bos_id)
    n_layers = runner.model_config.hf_config.num_hidden_layers
    layers = decoder_layers(model, n_layers)
    handles = [model.register_forward_pre_hook(functools.partial(_begin, runner, steering), with_kwargs=True)]
    for layer, when in steering.sites:
        if not 0 <= layer < len(layers):
            raise ValueError(f"steering layer {layer} is outside the model's {len(layers)} layers")
        handles.append(edit_stream(layers[layer], when, functools.partial(steering.apply, layer, when)))
    steering.handles = handles  # type: ignore[attr-defined]
    runner._saedetox = steering
    _wrap_update_states(runner)
    return steering


def _begin(runner: Any, steering: FlatSteering, module: nn.Module, args: tuple, kwargs: dict) -> None:
    batch = runner.input_batch
    n = int(batch.num_reqs)
    ids = kwargs.get("input_ids", args[0] if args else None)
    rows = None if ids is None else int(ids.shape[0])
    if n == 0 or rows is None:
        steering.begin(None)
        return
    starts = runner.query_start_loc.cpu[: n + 1].tolist()
    if starts[-1] > rows:  # a dummy or profiling pass: nothing to steer
        steering.begin(None)
        return
    req_ids = list(batch.req_ids[:n])
    requests = [runner.requests[r] for r in req_ids]
    # each request's first position in this pass, from the positions the model itself is given (the
    # runner's computed-token counts can lag by a step under async scheduling)
    positions = kwargs.get("positions", args[1] if len(args) > 1 else None)
    if positions is not None and positions.dim() == 1:
        computed = positions[torch.tensor(starts[:-1], device=positions.device)].tolist()
    else:
        computed = batch.num_computed_tokens_cpu[:n].tolist()
    steering.begin(
        StepInfo(
            req_ids=req_ids,
            starts=starts,
            computed=computed,
            prompt_lens=[len(r.prompt_token_ids or ()) for r in requests],
            levels=[_level(r) for r in requests],
            token_ids=ids[: starts[-1]],
        )
    )


def _wrap_update_states(runner: Any) -> None:
    if getattr(runner, "_saedetox_wrapped", False):
        return
    inner = runner._update_states

    @functools.wraps(inner)
    def update_states(scheduler_output: Any, *a: Any, **k: Any) -> Any:
        steering = getattr(runner, "_saedetox", None)
        if steering is not None:
            steering.finish(getattr(scheduler_output, "finished_req_ids", ()) or ())
            preempted = getattr(scheduler_output, "preempted_req_ids", None) or ()
            steering.finish(preempted)
        return inner(scheduler_output, *a, **k)

    runner._update_states = update_states
    runner._saedetox_wrapped = True


class SaedetoxWorkerExtension:
    """Methods vLLM adds to each worker (call them with ``LLM.collective_rpc``)."""

    def saedetox_install(self, path: str) -> list[str]:
        """Load the levels file at ``path`` into this worker's model; returns the level names."""
        runner = self.model_runner  # type: ignore[attr-defined]
        return list(install(runner, path).levels)

    def saedetox_levels(self) -> list[str]:
        steering = getattr(self.model_runner, "_saedetox", None)  # type: ignore[attr-defined]
        return [] if steering is None else list(steering.levels)

    def saedetox_state_size(self) -> int:
        """Per-request state entries held now (finished requests are freed at vLLM's next step)."""
        steering = getattr(self.model_runner, "_saedetox", None)  # type: ignore[attr-defined]
        return 0 if steering is None else steering.state_size()

    def saedetox_probe(self) -> dict[str, Any]:
        """What the worker runs: device, dtype and whether the model is compiled (debugging)."""
        runner = self.model_runner  # type: ignore[attr-defined]
        p = next(runner.model.parameters())
        return {"device": str(p.device), "dtype": str(p.dtype), "eager": bool(runner.model_config.enforce_eager)}
