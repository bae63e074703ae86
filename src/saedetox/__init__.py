"""saedetox: detoxify language models by steering sparse-autoencoder features, and measure the cost.

The Python API, in pipeline order (``docs/python-api.md``)::

    import saedetox as sd
    lm = sd.load_model("reference")                 # any HF causal LM: hub name, folder, "reference"
    sae = sd.load_sae("reference", lm)              # conventions (centring, scaling) from the model
    feats = sd.discover(lm, sae, sd.discovery_sets())   # -> Features (the features.json object)
    with sd.steer(lm, feats, mode="conditional", tier="medium"):
        print(sd.sample(lm, "You are such a", n_samples=3)[0][0].text)
    res = sd.evaluate(lm, "runs/x", sd.EvalConfig(n_prompts=20), sd.steering_spec(feats))

Names are imported on first use, so ``import saedetox`` is instant and pulls in no torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from saedetox.version import __version__

#: public name -> the module that defines it (the package layout: ``docs/layout.md``)
_EXPORTS: dict[str, str] = {
    # models and SAEs
    "load_model": "saedetox.model.load",
    "LoadedModel": "saedetox.model.load",
    "load_sae": "saedetox.sae.load",
    "LoadedSAE": "saedetox.sae.loaded",
    "preflight": "saedetox.sae.preflight",
    # discovery
    "discovery_sets": "saedetox.discover.sets",
    "DiscoverySets": "saedetox.discover.sets",
    "discover": "saedetox.discover.select",
    "Features": "saedetox.discover.features",
    # steering
    "Intervention": "saedetox.steering.spec",
    "SteeringSpec": "saedetox.steering.spec",
    "steering_spec": "saedetox.steering.steer",
    "steer": "saedetox.steering.steer",
    "Steerer": "saedetox.steering.steerer",
    "export": "saedetox.steering.export",
    # methods and evaluation
    "Method": "saedetox.methods.base",
    "build_method": "saedetox.methods.registry",
    "SamplingConfig": "saedetox.eval.sampler.sampling",
    "Sample": "saedetox.eval.sampler.sampling",
    "sample": "saedetox.eval.sampler.sampling",
    "EvalConfig": "saedetox.eval.config",
    "evaluate": "saedetox.eval.run",
    "RunResult": "saedetox.eval.result",
    "compare": "saedetox.report.compare",
    "sweep": "saedetox.experiments.sweep",
    "write_report": "saedetox.report.write",
    # progress and errors
    "on_progress": "saedetox.progress",
    "SaedetoxError": "saedetox.errors",
    "StaleRunError": "saedetox.errors",
}

__all__ = [
    "__version__",
    "load_model",
    "LoadedModel",
    "load_sae",
    "LoadedSAE",
    "preflight",
    "discovery_sets",
    "DiscoverySets",
    "discover",
    "Features",
    "Intervention",
    "SteeringSpec",
    "steering_spec",
    "steer",
    "Steerer",
    "export",
    "Method",
    "build_method",
    "SamplingConfig",
    "Sample",
    "sample",
    "EvalConfig",
    "evaluate",
    "RunResult",
    "compare",
    "sweep",
    "write_report",
    "on_progress",
    "SaedetoxError",
    "StaleRunError",
]

if TYPE_CHECKING:  # type checkers and IDEs see the real objects; at run time they load lazily
    from saedetox.discover.features import Features
    from saedetox.discover.select import discover
    from saedetox.discover.sets import DiscoverySets, discovery_sets
    from saedetox.errors import SaedetoxError, StaleRunError
    from saedetox.eval.config import EvalConfig
    from saedetox.eval.result import RunResult
    from saedetox.eval.run import evaluate
    from saedetox.eval.sampler.sampling import Sample, SamplingConfig, sample
    from saedetox.experiments.sweep import sweep
    from saedetox.methods.base import Method
    from saedetox.methods.registry import build_method
    from saedetox.model.load import LoadedModel, load_model
    from saedetox.progress import on_progress
    from saedetox.report.compare import compare
    from saedetox.report.write import write_report
    from saedetox.sae.load import load_sae
    from saedetox.sae.loaded import LoadedSAE
    from saedetox.sae.preflight import preflight
    from saedetox.steering.export import export
    from saedetox.steering.spec import Intervention, SteeringSpec
    from saedetox.steering.steer import steer, steering_spec
    from saedetox.steering.steerer import Steerer


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'saedetox' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
