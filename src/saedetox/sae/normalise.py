"""SAE-Lens' input normalisations that live outside ``encode``, applied where SAE-Lens applies them.

What the installed SAE-Lens does with ``normalize_activations``:

* ``constant_norm_rescale`` and ``layer_norm`` run inside ``SAE.encode``/``decode``: nothing to do.
* ``expected_average_only_in`` (Anthropic, April 2024): the SAE was trained on ``x · s`` with
  ``s = sqrt(d_in) / E‖x‖``, but ``encode`` never scales at run time. SAE-Lens supplies ``s``
  outside the SAE: ``SAE.from_pretrained`` folds the registry's ``norm_scaling_factor`` into the
  weights (``fold_activation_norm_scaling_factor``; without one it warns and encodes unscaled);
  its trainer estimates ``s`` on training activations, scales every batch by it, saves it in a
  checkpoint's ``activation_scaler.json`` and folds it into the final SAE; ``load_from_disk``
  applies nothing.
* ``covariance_whitening``: the same, with a whitening matrix (``activation_whitening.safetensors``).

So a registry SAE arrives already folded. A local folder saved with the setting still on is a
trainer checkpoint (or a hand conversion): we fold the factor its ``activation_scaler.json``
holds, as SAE-Lens' trainer does before saving a final SAE. When no factor is known (no such
file, or a registry entry without one), SAE-Lens would encode unscaled, which leaves the SAE
off its training scale: with the model at hand we estimate ``s`` as SAE-Lens' trainer defines it
(``sqrt(d_in)`` over the token-weighted mean norm of the activations the SAE sees, here on the
calibration sentences, BOS and padding left out because the sentences are short) and say so in
``sae.notes`` (the preflight warnings show them); without a model we leave it unscaled and say so.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file

from saedetox.data.calibration import CALIBRATION_TEXTS
from saedetox.errors import SaedetoxError
from saedetox.model.capture import iter_activations
from saedetox.model.load import LoadedModel
from saedetox.sae.loaded import LoadedSAE

SCALER_FILE = "activation_scaler.json"  # sae_lens.constants.ACTIVATION_SCALER_CFG_FILENAME
WHITENING_FILE = "activation_whitening.safetensors"  # sae_lens.constants.ACTIVATION_WHITENING_FILENAME


def saved_scaling_factor(folder: Path | None) -> float | None:
    """The ``scaling_factor`` of an SAE-Lens trainer checkpoint's ``activation_scaler.json``, if any."""
    path = folder / SCALER_FILE if folder is not None else None
    if path is None or not path.is_file():
        return None
    try:
        value = json.loads(path.read_text()).get("scaling_factor")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        raise SaedetoxError(f"{path} is not a valid SAE-Lens activation scaler file.") from None
    if value is None:
        return None
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise SaedetoxError(f"{path} has an invalid scaling_factor {value!r}.")
    return float(value)


@torch.no_grad()
def estimate_scaling_factor(
    lm: LoadedModel, sae: LoadedSAE, texts: Sequence[str] | None = None, hook: str | None = None
) -> float:
    """``sqrt(d_in) / mean ‖x‖`` over the (prepared) activations the SAE sees, token-weighted, BOS/pad excluded."""
    total, count = 0.0, 0
    texts = list(texts or CALIBRATION_TEXTS)
    hook = hook or sae.hook_name
    for acts, mask, _ in iter_activations(lm, texts, [hook], 16, sae.prepend_bos, "right", 128):
        m = mask.bool().clone()
        if sae.prepend_bos:
            m[:, 0] = False
        norms = sae.prepare(acts[hook].float()).norm(dim=-1)[m]
        total += float(norms.double().sum())
        count += int(norms.numel())
    if count == 0 or total <= 0:
        raise SaedetoxError(f"Could not estimate the activation scale of {sae.source}: no calibration tokens.")
    return math.sqrt(sae.d_in) / (total / count)


def _fold(sae: LoadedSAE, factor: float) -> None:
    try:
        sae.sae.fold_activation_norm_scaling_factor(factor)
    except NotImplementedError:
        raise SaedetoxError(
            f"SAE-Lens cannot fold an activation scale into {sae.source} ({sae.architecture})."
        ) from None


def apply_input_normalisation(
    sae: LoadedSAE, folder: Path | None, lm: LoadedModel | None, texts: Sequence[str] | None = None
) -> float | None:
    """Fold the input scaling SAE-Lens applies outside ``encode`` (see the module docstring); return it."""
    mode = getattr(sae.sae.cfg, "normalize_activations", "none")
    if mode == "covariance_whitening":
        path = folder / WHITENING_FILE if folder is not None else None
        if path is None or not path.is_file():
            sae.notes.append(
                "normalize_activations is covariance_whitening but no whitening statistics came with the SAE: "
                "encoded unwhitened, as SAE-Lens' load_from_disk does; its latents are probably wrong."
            )
            return None
        w = load_file(str(path))
        sae.sae.fold_activation_whitening(w["mean"], w["matrix"], w["inverse_matrix"])
        sae.notes.append(f"folded the covariance whitening from {path.name} (SAE-Lens trainer checkpoint)")
        return None
    if mode != "expected_average_only_in":
        return None
    factor = saved_scaling_factor(folder)
    how = f"from {SCALER_FILE} (SAE-Lens trainer checkpoint)"
    if factor is None:
        if lm is None:
            sae.notes.append(
                "normalize_activations is expected_average_only_in with no known scaling factor and no model to "
                "estimate it: encoded unscaled, as SAE-Lens does; load the SAE with the model to estimate it."
            )
            return None
        factor = estimate_scaling_factor(lm, sae, texts)
        how = "estimated on calibration text as SAE-Lens' trainer defines it: sqrt(d_in) / mean activation norm"
    _fold(sae, factor)
    sae.notes.append(f"folded the expected_average_only_in scaling factor {factor:.4g}, {how}")
    return factor
