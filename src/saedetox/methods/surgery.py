"""The ``surgery`` baseline: Model Surgery (Wang et al., NAACL 2025), as lucywang720/model-surgery publishes it.

1. A linear toxicity probe (``nn.Linear(d, 2)``, Adam, NLL) on the **final** hidden state (after
   the final norm), mean-pooled over each text's tokens (:mod:`saedetox.methods.surgery_probe`); its
   toxic-class row ``v`` (raw, not normalised) is the probe vector.
2. Every MLP neuron's gate row (gated MLPs: ``gate_proj``; Phi-3: the gate half of
   ``gate_up_proj``; GPT-2 ``c_fc`` / NeoX ``dense_h_to_4h`` / OPT ``fc1``: the only input
   projection) gets the score −cos(row, v); the scores of all layers are pooled and the top
   ``n_rows`` rows — the most **anti**-aligned with the probe — are selected. Published: 16,384
   of Llama-2-7B's 352,256 gate rows; here that share (:data:`ROW_FRACTION`, 4.65 %) of the
   model's rows unless a count is given (a fixed 16,384 would be 44 % of GPT-2 small).
3. Each selected row gets ``+α·v``: a persistent weight edit, applied while the method is
   active and restored bit-exactly afterwards; :func:`export_surgery` saves the edited model.

**Norm gain (our default, not the published code's).** A row reads ``norm(x) = x̂ ∘ g (+ b)``,
so what it responds to in the normalised stream is ``row ∘ g`` (Gemma: ``g = 1 + w``). The
published code takes the cosine with the raw row; we take it with ``row ∘ g`` (``gain_aware=
True``), because with non-uniform gains the raw cosine ranks rows by directions the neuron does
not actually read. ``gain_aware=False`` gives the published ranking. The edit itself is the
published one (``+α·v`` on the raw row) either way.

**Strength.** A raw ``strength`` is the published α (default 1.0; their eval script uses 1.08),
meaningful only with a probe trained like theirs (‖v‖ depends on the training). The named tiers
are scale-free instead: α is a multiple of the α that cancels the median edited row's reading
along the probe (``row∘g · v̂`` goes from its negative value to 0): ``low`` = 1× (the median
edited neuron no longer reads against the toxic direction), ``medium`` = 2× (its reading is
mirrored: it responds to the toxic direction as strongly as it responded against it), ``high`` =
4×. Remaining differences from the published code: ``docs/methods.md``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from saedetox.errors import SaedetoxError
from saedetox.methods.base import Method
from saedetox.methods.contrast import ContrastData, cached
from saedetox.methods.surgery_probe import Probe, ProbeConfig, train_toxicity_probe
from saedetox.model.arch import gate_rows, mlp_input_norm, norm_gain
from saedetox.model.load import LoadedModel
from saedetox.steering.checkpoint import save_checkpoint

PUBLISHED_ROWS, PUBLISHED_TOTAL_ROWS = 16384, 32 * 11008  # Llama-2-7B: 16,384 of 32 layers × 11,008 gate rows
ROW_FRACTION = PUBLISHED_ROWS / PUBLISHED_TOTAL_ROWS  # 0.0465
SURGERY_TIERS: dict[str, float] = {"low": 1.0, "medium": 2.0, "high": 4.0}  # × the α that cancels the median row


@dataclass
class SurgeryPlan:
    """The rows to edit and by how much: ``gate_rows(layer)[j] += alpha · probe.vector`` for each (layer, j)."""

    rows: list[tuple[int, int]]
    alpha: float
    probe: Probe
    total_rows: int
    gain_aware: bool
    tier: str | None = None
    row_source: list[str] = field(default_factory=list)  # per layer: which weight the rows are

    @property
    def rows_per_layer(self) -> list[int]:
        counts = [0] * len(self.row_source)
        for layer, _ in self.rows:
            counts[layer] += 1
        return counts

    def summary(self) -> dict[str, Any]:
        """``config.surgery`` for metrics."""
        return {
            "probe_layer": self.probe.layer,
            "probe_site": self.probe.site,
            "probe_acc": self.probe.heldout_acc,
            "probe_train_acc": self.probe.train_acc,
            "probe_norm": round(float(self.probe.vector.norm()), 6),
            "n_rows": len(self.rows),
            "total_rows": self.total_rows,
            "rows_per_layer": self.rows_per_layer,
            "row_weights": sorted(set(self.row_source)),
            "alpha": self.alpha,
            "tier": self.tier,
            "gain_aware": self.gain_aware,
        }


def _reading_rows(lm: LoadedModel, layer: int, gain_aware: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(the layer's gate rows as read from the normalised stream [m, d] float32, the gain [d])."""
    block = lm.layers[layer]
    _, rows = gate_rows(block)
    d = rows.shape[1]
    gain = (norm_gain(mlp_input_norm(block, lm.model)) if gain_aware else torch.ones(d)).to(rows.device)
    return rows.float() * gain, gain


@torch.no_grad()
def select_rows(
    lm: LoadedModel, v: torch.Tensor, n_rows: int | None = None, gain_aware: bool = True
) -> tuple[list[tuple[int, int]], int]:
    """The ``n_rows`` gate rows (pooled over layers) most anti-aligned with ``v``: top −cos. Returns (rows, total)."""
    scores, owner = [], []
    for i in range(lm.n_layers):
        r, _ = _reading_rows(lm, i, gain_aware)
        scores.append(-F.cosine_similarity(r, v.to(r.device, r.dtype)[None], dim=1).cpu())
        owner.append(torch.full((r.shape[0],), i, dtype=torch.long))
    s, layer_of = torch.cat(scores), torch.cat(owner)
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(torch.bincount(layer_of), 0)[:-1]])
    total = int(s.numel())
    k = n_rows if n_rows is not None else max(1, round(ROW_FRACTION * total))
    if not 1 <= k <= total:
        raise SaedetoxError(f"Model Surgery edits between 1 and {total} rows on this model, got {k}.")
    top = s.topk(k).indices
    return [(int(layer_of[t]), int(t - offsets[layer_of[t]])) for t in top], total


@torch.no_grad()
def tier_alpha(lm: LoadedModel, v: torch.Tensor, rows: list[tuple[int, int]], tier: str, gain_aware: bool) -> float:
    """α for a named tier: ``SURGERY_TIERS[tier]`` × the median over edited rows of the α that zeroes ``row∘g · v̂``."""
    if tier not in SURGERY_TIERS:
        raise SaedetoxError(f"Unknown surgery tier '{tier}': use low, medium or high, or a raw strength.")
    v = v.float()
    vhat = v / v.norm()
    cancel = []
    for i in sorted({layer for layer, _ in rows}):
        r, gain = _reading_rows(lm, i, gain_aware)
        js = torch.tensor([j for layer, j in rows if layer == i], device=r.device)
        den = float((v.to(r.device) * gain) @ vhat.to(r.device))  # how much +1·v moves a row's reading along v̂
        if den > 0:
            cancel.append(-(r[js] @ vhat.to(r.device)).cpu() / den)
    med = float(torch.cat(cancel).median()) if cancel else 0.0
    if not med > 0:
        raise SaedetoxError("The probe has no anti-aligned gate rows to edit; a named surgery tier is undefined here.")
    return SURGERY_TIERS[tier] * med


def surgery_plan(
    lm: LoadedModel,
    probe: Probe,
    tier: str | None = "medium",
    strength: float | None = None,
    n_rows: int | None = None,
    gain_aware: bool = True,
) -> SurgeryPlan:
    """Select the rows and fix α (raw ``strength``, else the named ``tier``)."""
    rows, total = select_rows(lm, probe.vector, n_rows, gain_aware)
    if strength is not None:
        alpha, tier = float(strength), None
    else:
        alpha = tier_alpha(lm, probe.vector, rows, tier or "medium", gain_aware)
    source = [gate_rows(b)[0] for b in lm.layers]
    return SurgeryPlan(rows, alpha, probe, total, gain_aware, tier or None, source)


@contextmanager
def apply_surgery(lm: LoadedModel, plan: SurgeryPlan) -> Iterator[None]:
    """Add ``alpha · v`` to the planned rows while active; restore the original weights bit-exactly afterwards."""
    saved = []
    with torch.no_grad():
        for i in sorted({layer for layer, _ in plan.rows}):
            _, view = gate_rows(lm.layers[i])
            js = torch.tensor([j for layer, j in plan.rows if layer == i], device=view.device)
            saved.append((view, js, view[js].clone()))
            view[js] = view[js] + (plan.alpha * plan.probe.vector).to(view.device, view.dtype)
    try:
        yield
    finally:
        with torch.no_grad():
            for view, js, orig in saved:
                view[js] = orig


def surgery_method(
    lm: LoadedModel,
    data: ContrastData,
    tier: str | float | None = "medium",
    strength: float | None = None,
    probe: ProbeConfig | None = None,
    n_rows: int | None = None,
    gain_aware: bool = True,
) -> Method:
    """Model Surgery as a :class:`Method` (``details`` = ``{"tier", "alpha", "surgery": plan summary}``)."""
    if strength is None and tier is not None and tier not in SURGERY_TIERS:
        raise SaedetoxError("Surgery takes a named tier (low, medium, high) or a raw strength, not a numeric tier.")
    cfg = probe or ProbeConfig()
    trained = cached(data, ("surgery-probe", id(lm.model), cfg), lambda: train_toxicity_probe(lm, data, cfg))
    plan = surgery_plan(lm, trained, tier if strength is None else None, strength, n_rows, gain_aware)  # type: ignore[arg-type]
    return Method(
        name="surgery",
        context=lambda: apply_surgery(lm, plan),
        weights=lambda: apply_surgery(lm, plan),
        details={"tier": plan.tier, "alpha": plan.alpha, "surgery": plan.summary()},
    )


def export_surgery(
    lm: LoadedModel, plan: SurgeryPlan, out: str | Path, overwrite: bool = False, dtype: torch.dtype | None = None
) -> Path:
    """Save the surgically edited model as a plain HF checkpoint; the provenance file lets anyone redo the edit."""
    with apply_surgery(lm, plan):
        model = copy.deepcopy(lm.model)
    meta = {
        "kind": "surgery",
        "source_model": lm.name,
        "surgery": plan.summary(),
        "edit": {
            "rule": "gate_rows(layer)[j] += alpha * probe_vector for every [layer, j] in rows",
            "alpha": plan.alpha,
            "probe_vector": plan.probe.vector.tolist(),
            "rows": [list(r) for r in plan.rows],
            "row_weights": {f"blocks.{i}": s for i, s in enumerate(plan.row_source)},
        },
    }
    return save_checkpoint(model, lm.tokenizer, out, meta, overwrite=overwrite, dtype=dtype)
