"""The ``vllm.general_plugins`` entry point: steering levels in every vLLM process.

vLLM calls :func:`register` in each of its processes. When ``SAEDETOX_LEVELS`` names a levels
file (``saedetox serve`` sets it), every model runner installs those levels right after loading
its model, and engines default to what steering needs (eager mode, no prefix caching). Without
the variable the plugin does nothing, so installing ``saedetox[vllm]`` changes no other vLLM use.
"""

from __future__ import annotations

import functools
import importlib
import os
from typing import Any

ENV = "SAEDETOX_LEVELS"
NAMES_ENV = "SAEDETOX_LEVEL_NAMES"  # the level names, so the API server checks requests without the file
_RUNNERS = ("vllm.v1.worker.gpu_model_runner:GPUModelRunner", "vllm.v1.worker.cpu_model_runner:CPUModelRunner")


def register() -> None:
    path = os.environ.get(ENV)
    if not path:
        return
    for target in _RUNNERS:
        module, _, name = target.partition(":")
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
        if "load_model" in cls.__dict__ and not getattr(cls.load_model, "_saedetox", False):
            cls.load_model = _after_load(cls.load_model, path)
    _engine_defaults()
    names = os.environ.get(NAMES_ENV)  # the API server's process: refuse unknown levels there
    if names:
        _check_levels([n for n in names.split(",") if n])


def _check_levels(names: list[str]) -> None:
    """Requests naming an unknown level fail validation (HTTP 400 on the server) before the engine."""
    from vllm.exceptions import VLLMValidationError
    from vllm.sampling_params import SamplingParams

    from saedetox.serving.compiled import LEVEL_KEY

    inner = SamplingParams._verify_args
    if getattr(inner, "_saedetox", False):
        return

    @functools.wraps(inner)
    def verify(self: Any) -> None:
        inner(self)
        level = (self.extra_args or {}).get(LEVEL_KEY)
        if level is not None and str(level) not in names:
            raise VLLMValidationError(
                f"Unknown steering level '{level}': use one of {', '.join(names)}.", parameter=LEVEL_KEY, value=level
            )

    verify._saedetox = True  # type: ignore[attr-defined]
    SamplingParams._verify_args = verify


def _after_load(inner: Any, path: str) -> Any:
    @functools.wraps(inner)
    def load_model(self: Any, *args: Any, **kwargs: Any) -> Any:
        out = inner(self, *args, **kwargs)
        from saedetox.serving.worker import install

        install(self, path)
        return out

    load_model._saedetox = True  # type: ignore[attr-defined]
    return load_model


def _engine_defaults() -> None:
    from vllm.engine.arg_utils import EngineArgs

    inner = EngineArgs.create_engine_config
    if getattr(inner, "_saedetox", False):
        return

    @functools.wraps(inner)
    def create_engine_config(self: Any, *args: Any, **kwargs: Any) -> Any:
        self.enforce_eager = True
        self.enable_prefix_caching = False
        return inner(self, *args, **kwargs)

    create_engine_config._saedetox = True  # type: ignore[attr-defined]
    EngineArgs.create_engine_config = create_engine_config
