"""An offline vLLM engine with named steering levels: ``SteeredLLM``.

>>> levels = build_levels(lm, {"off": None, "high": sd.steering_spec(feats, tier="high")}, "levels.pt")
>>> llm = SteeredLLM("path/to/model", levels)
>>> llm.generate([[bos, *ids]], level="high", max_tokens=20)

Each request names its level; requests at different levels share batches and each gets exactly
what it gets alone. Unknown levels are refused before anything reaches the engine.
"""

from __future__ import annotations

import atexit
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from saedetox.errors import SaedetoxError
from saedetox.model.load import LoadedModel
from saedetox.serving.compiled import LEVEL_KEY, OFF, compile_levels, load_levels_file, save_levels
from saedetox.steering.spec import SteeringSpec

EXTENSION = "saedetox.serving.worker.SaedetoxWorkerExtension"


def build_levels(lm: LoadedModel, levels: Mapping[str, SteeringSpec | None], path: str | Path) -> Path:
    """Compile ``{name: spec or None}`` on ``lm`` and write the levels file the workers load."""
    tok = lm.tokenizer
    bos = getattr(tok, "bos_token_id", None) if tok is not None else None
    return save_levels(compile_levels(lm, levels), path, bos)


def engine_defaults(kwargs: dict[str, Any]) -> dict[str, Any]:
    """vLLM settings steering needs: eager mode, no prefix caching (a cached prefix would carry another
    level's steering and skip the gate's reading of the prompt)."""
    if kwargs.get("enable_prefix_caching"):
        raise SaedetoxError("Steering needs prefix caching off: a cached prompt prefix would carry another level.")
    if kwargs.get("enforce_eager") is False:
        raise SaedetoxError("Steering runs in eager mode only (hooks are not captured by CUDA graphs).")
    return {**kwargs, "enforce_eager": True, "enable_prefix_caching": False}


class SteeredLLM:
    """``vllm.LLM`` with the saedetox worker extension and the levels of one levels file installed."""

    def __init__(self, model: str, levels: str | Path, **llm_kwargs: Any) -> None:
        from vllm import LLM  # deferred: vLLM is an optional extra

        load_levels_file(levels)  # refuses a bad file before an engine starts
        self.model = model
        self.llm = LLM(model=model, worker_extension_cls=EXTENSION, **engine_defaults(llm_kwargs))
        self.levels: list[str] = []
        self.install(levels)

    def install(self, levels: str | Path) -> list[str]:
        """Replace the engine's levels by those of another levels file (between generate calls)."""
        self.levels_path = str(Path(levels).resolve())
        names, _ = load_levels_file(self.levels_path)
        self.levels = list(self.llm.collective_rpc("saedetox_install", args=(self.levels_path,))[0])
        assert set(self.levels) == set(names)
        return self.levels

    def check_level(self, level: str) -> str:
        if level not in self.levels:
            raise SaedetoxError(f"Unknown steering level '{level}': use one of {', '.join(self.levels)}.")
        return level

    def sampling_params(self, level: str = OFF, **params: Any) -> Any:
        from vllm import SamplingParams

        extra = dict(params.pop("extra_args", None) or {})
        extra[LEVEL_KEY] = self.check_level(level)
        return SamplingParams(extra_args=extra, **params)

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        level: str | Sequence[str] = OFF,
        seeds: Sequence[int] | None = None,
        **params: Any,
    ) -> list[list[int]]:
        """Token ids generated for each prompt (token ids, BOS included where the model expects it);
        ``level``: one level for all, or one per prompt; ``seeds``: one sampling seed per prompt."""
        from vllm.inputs import TokensPrompt

        levels = [level] * len(prompts) if isinstance(level, str) else list(level)
        if len(levels) != len(prompts):
            raise SaedetoxError(f"Give one level per prompt ({len(prompts)}), got {len(levels)}.")
        if seeds is not None and len(seeds) != len(prompts):
            raise SaedetoxError(f"Give one seed per prompt ({len(prompts)}), got {len(seeds)}.")
        sps = [
            self.sampling_params(lv, **({**params, "seed": int(seeds[i])} if seeds is not None else params))
            for i, lv in enumerate(levels)
        ]
        outs = self.llm.generate([TokensPrompt(prompt_token_ids=list(p)) for p in prompts], sps, use_tqdm=False)
        return [list(o.outputs[0].token_ids) for o in outs]

    def sample(
        self, prompts: Sequence[Sequence[int]], level: str, seeds: Sequence[int], n: int, **params: Any
    ) -> list[list[list[int]]]:
        """``n`` samples per prompt (token ids): sample ``j`` of prompt ``i`` is one request seeded ``seeds[i] + j``,
        so it gets the same tokens whatever else shares the batch."""
        from vllm.inputs import TokensPrompt

        if len(seeds) != len(prompts):
            raise SaedetoxError(f"Give one seed per prompt ({len(prompts)}), got {len(seeds)}.")
        sps = [self.sampling_params(level, seed=int(s) + j, **params) for s in seeds for j in range(n)]
        inputs = [TokensPrompt(prompt_token_ids=list(p)) for p in prompts for _ in range(n)]
        outs = self.llm.generate(inputs, sps, use_tqdm=False)
        flat = [list(o.outputs[0].token_ids) for o in outs]
        return [flat[i * n : (i + 1) * n] for i in range(len(prompts))]

    def close(self) -> None:
        """Stop the engine's processes now (otherwise at interpreter exit)."""
        core = getattr(getattr(self.llm, "llm_engine", None), "engine_core", None)
        if core is not None:
            core.shutdown()

    def __enter__(self) -> SteeredLLM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def state_size(self) -> int:
        """Per-request steering state held by the workers (freed at the step after a request ends)."""
        return int(sum(self.llm.collective_rpc("saedetox_state_size")))


_SHARED: dict[str, Any] = {}


def shared_engine(model: str, levels: str | Path, **llm_kwargs: Any) -> SteeredLLM:
    """One engine per process for ``(model, llm_kwargs)``, reused with ``levels`` installed (an engine
    starts in tens of seconds; a sweep's runs on one model share it). Another model closes the old one."""
    key = repr((model, sorted(llm_kwargs.items())))
    held = _SHARED.get("engine")
    if held is not None and _SHARED.get("key") == key:
        held.install(levels)
        return held
    close_shared_engine()
    _SHARED["engine"], _SHARED["key"] = SteeredLLM(model, levels, **llm_kwargs), key
    if not _SHARED.get("atexit"):
        atexit.register(close_shared_engine)  # its processes stop before the interpreter's shared memory goes
        _SHARED["atexit"] = True
    return _SHARED["engine"]


def close_shared_engine() -> None:
    """Stop the process's shared engine, if one runs."""
    held = _SHARED.pop("engine", None)
    _SHARED.pop("key", None)
    if held is not None:
        held.close()
