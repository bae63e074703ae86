"""Export a baseline as a plain HF checkpoint: mean-difference steering folded in, or Model Surgery's weight edit.

Each checkpoint carries ``saedetox_export.json``: for ``meandiff`` the folded vector, where it
came from (hook, contrast data, rule) and the resolved α / median norm; for ``surgery`` the probe
vector, α and every edited row, so the edit can be redone or checked from the file alone.
"""

from __future__ import annotations

from pathlib import Path

import torch

from saedetox.errors import SaedetoxError
from saedetox.methods.contrast import ContrastData, default_contrast
from saedetox.methods.meandiff import meandiff_direction, meandiff_spec
from saedetox.methods.surgery import SURGERY_TIERS, export_surgery, surgery_plan
from saedetox.methods.surgery_probe import ProbeConfig, train_toxicity_probe
from saedetox.model.load import LoadedModel
from saedetox.steering.export import export

EXPORTABLE = ("meandiff", "surgery")


def export_baseline(
    lm: LoadedModel,
    name: str,
    out: str | Path,
    *,
    hook: str | None = None,
    tier: str | float | None = None,
    strength: float | None = None,
    data: ContrastData | None = None,
    data_dir: str | None = None,
    overwrite: bool = False,
    dtype: torch.dtype | None = None,
    probe: ProbeConfig | None = None,
) -> Path:
    """Write ``name`` (meandiff or surgery) into a checkpoint at ``out`` (atomic; see :func:`save_checkpoint`)."""
    if name not in EXPORTABLE:
        raise SaedetoxError(
            f"Method '{name}' cannot be exported as weights; exportable: sae (constant steering), "
            f"{', '.join(EXPORTABLE)}."
        )
    if tier is None and strength is None:
        tier = "medium"
    data = data or default_contrast(data_dir)
    if name == "surgery":
        if strength is None and tier not in SURGERY_TIERS:
            raise SaedetoxError("Surgery takes a named tier (low, medium, high) or a raw strength, not a numeric tier.")
        trained = train_toxicity_probe(lm, data, probe)
        plan = surgery_plan(lm, trained, None if strength is not None else tier, strength)  # type: ignore[arg-type]
        return export_surgery(lm, plan, out, overwrite=overwrite, dtype=dtype)
    hook = hook or f"blocks.{lm.n_layers // 2}.hook_resid_pre"
    spec = meandiff_spec(meandiff_direction(lm, hook, data), hook, tier, strength)
    origin = {
        "method": "meandiff",
        "hook": hook,
        "data": "toxic vs clean contrast texts (default: ParaDetox discovery split, toxic vs neutral paraphrase)",
        "n_toxic": len(data.toxic),
        "n_clean": len(data.clean),
        "rule": "vector = unit(mean over toxic tokens - mean over clean tokens), BOS excluded; shift = -alpha * vector",
    }
    return export(lm, spec, out, dtype=dtype, overwrite=overwrite, vector_provenance=origin)
