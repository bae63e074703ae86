"""Preflight: does this SAE fit this model, measured on the runtime we will steer?

Checks ``d_in`` against the model width and that the hook exists (hard errors), warns on a
model-name mismatch, and measures on calibration sentences: explained variance, mean L0 and
the next-token cross-entropy with the SAE reconstruction spliced in at the hook (error term
dropped), so a user sees at once when an SAE does not fit: an explained variance below
``LOW_EV`` (or negative: worse than predicting the mean activation) is a warning.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from saedetox.data.calibration import CALIBRATION_TEXTS
from saedetox.errors import SaedetoxError
from saedetox.model.load import LoadedModel, as_loaded_model
from saedetox.model.sites import edit_at
from saedetox.sae.loaded import LoadedSAE

LOW_EV = 0.5  # trained SAEs reach 0.7-0.95 on their own model and hook; far below means a mismatch


@dataclass
class PreflightReport:
    hook: str
    d_in: int
    d_model: int
    explained_variance: float
    mean_l0: float
    ce_clean: float
    ce_spliced: float
    n_tokens: int
    warnings: list[str] = field(default_factory=list)

    @property
    def ce_delta(self) -> float:
        return self.ce_spliced - self.ce_clean

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ce_delta"] = self.ce_delta
        return d


def _norm_name(name: str | None) -> str:
    n = (name or "").lower().split("/")[-1]
    return re.sub(r"[^a-z0-9]", "", n.replace("-small", ""))


def check_fit(lm: LoadedModel, sae: LoadedSAE, hook: str | None = None) -> list[str]:
    """Hard checks (raise) and soft warnings (returned)."""
    hook = hook or sae.hook_name
    if sae.d_in != lm.d_model:
        raise SaedetoxError(
            f"SAE {sae.source} has d_in {sae.d_in} but the model width is {lm.d_model}: "
            "it was trained for another model."
        )
    lm.site(hook)
    warnings: list[str] = []
    model_id = getattr(lm.model.config, "_name_or_path", "") or lm.name
    if sae.model_name and _norm_name(sae.model_name) not in (_norm_name(model_id), _norm_name(lm.name)):
        warnings.append(f"SAE was trained on '{sae.model_name}', model is '{lm.name}'; check the preflight numbers.")
    if hook != sae.hook_name:
        warnings.append(f"SAE was trained at {sae.hook_name} but is used at {hook}.")
    return warnings + list(sae.notes)


@torch.no_grad()
def preflight(
    lm: LoadedModel,
    sae: LoadedSAE,
    texts: Sequence[str] | None = None,
    hook: str | None = None,
    batch_size: int = 16,
    max_length: int = 128,
) -> PreflightReport:
    """Does ``sae`` fit ``lm`` at ``hook``? Hard checks raise; the report has explained variance, L0, the CE-loss
    change with the reconstruction spliced in, and ``warnings`` (model mismatch, negative or tiny EV)."""
    lm = as_loaded_model(lm)
    hook = hook or sae.hook_name
    warnings = check_fit(lm, sae, hook)
    texts = list(texts or CALIBRATION_TEXTS)
    site = lm.site(hook)
    splice = {"on": False}
    sq_err = 0.0
    sq_tot = 0.0
    sum_x = torch.zeros(lm.d_model, dtype=torch.float64)
    sum_x2 = 0.0
    l0_sum = 0.0
    n_tok = 0
    ce = {"clean": [0.0, 0], "spliced": [0.0, 0]}
    valid: dict[str, torch.Tensor] = {}

    def edit(x: torch.Tensor) -> torch.Tensor:
        nonlocal sq_err, l0_sum, n_tok, sum_x2, sum_x
        xc = sae.prepare(x.float())
        acts = sae.sae.encode(xc.to(sae.sae.W_enc.dtype))
        recon = sae.sae.decode(acts).float()
        if not splice["on"]:
            m = valid["mask"]
            err = (xc - recon)[m]
            sq_err += float((err.double() ** 2).sum())
            sel = xc[m].double()
            sum_x += sel.sum(0).cpu()
            sum_x2 += float((sel**2).sum())
            l0_sum += float((acts[m] > 0).sum())
            n_tok += int(m.sum())
            return x
        return (x.float() - (xc - recon)).to(x.dtype)

    handle = edit_at(site, edit)
    try:
        for start in range(0, len(texts), batch_size):
            batch = lm.encode_prompts(
                texts[start : start + batch_size],
                prepend_bos=sae.prepend_bos,
                padding_side="right",
                max_length=max_length,
            )
            mask = batch["attention_mask"].bool()
            stats_mask = mask.clone()
            if sae.prepend_bos:
                stats_mask[:, 0] = False  # BOS activations are outliers; SAE-Lens evals skip them too
            valid["mask"] = stats_mask
            labels = batch["input_ids"].masked_fill(~mask, -100)
            for key, on in (("clean", False), ("spliced", True)):
                splice["on"] = on
                out = lm.model(**batch, labels=labels, use_cache=False)
                n = int((labels[:, 1:] != -100).sum())
                ce[key][0] += float(out.loss) * n
                ce[key][1] += n
    finally:
        handle.remove()
    mean = sum_x / max(n_tok, 1)
    sq_tot = sum_x2 - float((mean**2).sum()) * n_tok
    ev = 1.0 - sq_err / sq_tot if sq_tot > 0 else float("nan")
    warnings += ev_warnings(ev)
    return PreflightReport(
        hook=hook,
        d_in=sae.d_in,
        d_model=lm.d_model,
        explained_variance=ev,
        mean_l0=l0_sum / max(n_tok, 1),
        ce_clean=ce["clean"][0] / max(ce["clean"][1], 1),
        ce_spliced=ce["spliced"][0] / max(ce["spliced"][1], 1),
        n_tokens=n_tok,
        warnings=warnings,
    )


def ev_warnings(ev: float) -> list[str]:
    """A warning when the explained variance is negative, tiny or not a number."""
    hint = "check the model, the hook and the conventions (centring, input normalisation, BOS)"
    if ev != ev:
        return [f"Explained variance is undefined (no variance in the activations): {hint}."]
    if ev < 0:
        return [
            f"Explained variance is negative ({ev:.3f}): the SAE reconstructs worse than the mean activation; {hint}."
        ]
    if ev < LOW_EV:
        return [f"Explained variance is only {ev:.3f} (< {LOW_EV}): the SAE barely fits these activations; {hint}."]
    return []
