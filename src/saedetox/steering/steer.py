"""The notebook verbs of steering: :func:`steering_spec` builds a spec, :func:`steer` applies one for a block.

``what`` may be discovery's :class:`~saedetox.discover.features.Features` (or a features.json
path or mapping), latents (with ``sae=``: indices, or ids as people write them, Neuronpedia
``gpt2-small/6-res-jb/1234`` or its URL and SAE-Lens ``release/sae_id:1234``, in a list or one
comma-separated string; :func:`~saedetox.discover.features.parse_features`), an
:class:`Intervention` or a whole :class:`SteeringSpec`. From features, the SAE discovery ran on is
reused (or loaded by name), the gates are its per-latent thresholds (:func:`default_gates`) and
adaptive mode gets its detector (:func:`default_detector`); the hook is the SAE's own unless
``hook=`` says otherwise, as on the command line, so the same steering made here or there has the
same fingerprint.
Semantics: ``docs/steering.md``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from saedetox.discover.features import Features, features_file, parse_features
from saedetox.errors import SaedetoxError
from saedetox.model.load import LoadedModel, as_loaded_model
from saedetox.sae.loaded import LoadedSAE
from saedetox.steering.spec import (
    Intervention,
    Mode,
    Positions,
    SteeringSpec,
    Tier,
    default_detector,
    default_gates,
)
from saedetox.steering.steerer import Steerer

SteerTarget = SteeringSpec | Intervention | Features | dict[str, Any] | str | Path | Sequence[int]


def steering_spec(
    what: SteerTarget,
    *,
    sae: LoadedSAE | str | None = None,
    mode: Mode = "constant",
    tier: Tier | float | None = None,
    strength: float | None = None,
    push: float | None = None,
    hook: str | None = None,
    positions: Positions = "all",
    threshold: float | None = None,
    clamp_value: float = 0.0,
) -> SteeringSpec:
    """A validated :class:`SteeringSpec` from features, latent indices, an intervention or a spec.

    One of ``tier`` (default ``medium``), ``strength`` (raw α) or ``push`` sets the strength.
    ``threshold`` is one gate for every latent; by default conditional mode uses the gates
    discovery stored and token mode 0.
    """
    if isinstance(what, (SteeringSpec, Intervention)):
        given = {"sae": sae, "tier": tier, "strength": strength, "push": push, "hook": hook, "threshold": threshold}
        extra = [k for k, v in given.items() if v is not None]
        if extra or mode != "constant" or positions != "all" or clamp_value:
            raise SaedetoxError(
                "A SteeringSpec or Intervention already says how to steer; set "
                f"{', '.join(extra) or 'the options'} on it instead of passing them here."
            )
        return (what if isinstance(what, SteeringSpec) else SteeringSpec([what])).validate()
    if isinstance(what, Path) or isinstance(what, str) and features_file(what) is not None:
        what = Features.load(what)
    features: Features | None = None
    if isinstance(what, dict):
        features = what if isinstance(what, Features) else Features(what)
        latents = features.latents
        sae = sae if sae is not None else features.sae if features.sae is not None else features.sae_name
    elif isinstance(what, str) or any(isinstance(i, str) for i in what):  # ids as people write them
        latents = parse_features(what if isinstance(what, str) else ",".join(map(str, what)), sae)
    else:
        latents = [int(i) for i in what]
    if sae is None:
        raise SaedetoxError("Say which SAE the latents belong to: pass sae= (a name or a loaded SAE).")
    if threshold is None:
        tau, taus = default_gates(mode, features)
    else:
        tau, taus = float(threshold), None
    iv = Intervention(
        sae=sae,
        latents=latents,
        hook=hook,
        mode=mode,
        strength=strength,
        tier=tier,
        push=push,
        threshold=tau,
        thresholds=taus,
        clamp_value=clamp_value,
        positions=positions,
        detector=default_detector(features) if mode == "adaptive" and features is not None else None,
    )
    return SteeringSpec([iv]).validate()


@contextmanager
def steer(lm: LoadedModel | Any, what: SteerTarget, **options: Any) -> Iterator[Steerer]:
    """Steer ``lm`` inside a ``with`` block; the hooks are gone when it ends (even on an error).

    ``with sd.steer(lm, feats, mode="conditional", tier="high"): sd.sample(lm, prompts)``.
    ``lm`` may also be an nnsight ``LanguageModel`` or a ``TransformerBridge`` (the HF model inside is
    steered). ``options`` are :func:`steering_spec`'s. Yields the attached :class:`Steerer`
    (``.stats()`` gives the effective push measured while generating).
    """
    with Steerer(as_loaded_model(lm), steering_spec(what, **options)) as steerer:
        yield steerer
