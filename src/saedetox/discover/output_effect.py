"""What a latent does to the output, and the per-position "next token is toxic" detector.

Output effect (after Arad et al. 2025, who choose SAE features by their effect on the output
rather than by what makes them fire): steer with −c · m · û_f at every real position of the
hook (û_f the latent's unit decoder direction, m the median residual norm of the texts at the
hook, c a fixed small push) and measure the share by which the next-token probability mass on
the toxic tokens (the attribution targets, :func:`saedetox.discover.attribution.toxic_token_ids`)
falls, over every real position of toxic texts: ``1 − mass_steered / mass_unsteered``. Positive:
steering against the latent makes toxic words less likely. Exact forward passes, no first-order
approximation.

The token detector (:func:`fit_token_detector`) is a logistic regression on the selected
latents' activations at one position, with label "the next token is a toxic token"; its
``pooling`` is ``token``, so adaptive steering's strength follows the evidence at each position
and falls again when the toxic signal goes away (the text detector's running maximum never falls).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from saedetox.discover.detector import fit_detector
from saedetox.model.capture import iter_activations
from saedetox.model.load import LoadedModel
from saedetox.model.sites import edit_at, read_at
from saedetox.model.tokens import tokenize_batch
from saedetox.sae.loaded import LoadedSAE

DEFAULT_PUSH = 0.1  # the output-effect push, as a fraction of the median residual norm


@torch.no_grad()
def output_effects(
    lm: LoadedModel,
    hook: str,
    directions: torch.Tensor,
    texts: Sequence[str],
    targets: Sequence[int],
    push: float = DEFAULT_PUSH,
    prepend_bos: bool = True,
    batch_size: int = 32,
    max_length: int = 64,
) -> np.ndarray:
    """``[k]``: per direction (rows of ``directions``), the relative drop of the toxic-token mass (module docstring)."""
    site = lm.site(hook)
    tgt = torch.tensor(sorted(set(int(t) for t in targets)), dtype=torch.long, device=lm.device)
    u = directions.float()
    u = (u / u.norm(dim=-1, keepdim=True).clamp_min(1e-12)).to(lm.device)
    batches = [
        tokenize_batch(lm.tokenizer, list(texts[s : s + batch_size]), prepend_bos, "right", lm.device, max_length)
        for s in range(0, len(texts), batch_size)
    ]
    if not len(tgt) or not batches:
        return np.zeros(u.shape[0])
    where: dict[str, torch.Tensor] = {}

    def steered_positions(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        w = batch["attention_mask"].bool().clone()
        if prepend_bos:
            w[:, 0] = False
        return w

    def mass(batch: dict[str, torch.Tensor]) -> float:
        probs = torch.softmax(lm.model(**batch, use_cache=False).logits.float(), -1)
        return float((probs[..., tgt].sum(-1) * steered_positions(batch)).sum())

    norms: list[torch.Tensor] = []
    base = 0.0
    for batch in batches:
        w = steered_positions(batch)
        handle = read_at(site, lambda x, w=w: norms.append(_norms(x, lm)[w].cpu()))
        try:
            base += mass(batch)
        finally:
            handle.remove()
    size = push * float(torch.cat(norms).median())
    out = np.zeros(u.shape[0])
    for j in range(u.shape[0]):
        delta = -size * u[j]
        steered = 0.0
        for batch in batches:
            where["w"] = steered_positions(batch).unsqueeze(-1)
            handle = edit_at(site, lambda x, d=delta: x + where["w"].to(x.dtype) * d.to(x.dtype))
            try:
                steered += mass(batch)
            finally:
                handle.remove()
        out[j] = 1.0 - steered / base if base > 0 else 0.0
    return out


def _norms(x: torch.Tensor, lm: LoadedModel) -> torch.Tensor:
    x = x.float()
    if lm.uses_layernorm:
        x = x - x.mean(-1, keepdim=True)
    return x.norm(dim=-1)


@torch.no_grad()
def token_acts(
    lm: LoadedModel,
    sae: LoadedSAE,
    texts: Sequence[str],
    latents: Sequence[int],
    hook: str | None = None,
    batch_size: int = 32,
    max_length: int = 128,
) -> tuple[list[np.ndarray], list[list[int]]]:
    """Per text: the latents' activations ``[T, k]`` at its real positions (BOS left out) and their token ids."""
    hook = hook or sae.hook_name
    idx = torch.tensor(list(latents), dtype=torch.long)
    acts_out: list[np.ndarray] = []
    ids_out: list[list[int]] = []
    for acts, mask, ids in iter_activations(lm, list(texts), [hook], batch_size, sae.prepend_bos, "right", max_length):
        a = sae.latent_acts(acts[hook], idx.to(acts[hook].device)).float().cpu().numpy()
        start = 1 if sae.prepend_bos else 0
        for i in range(a.shape[0]):
            n = int(mask[i].sum())
            acts_out.append(a[i, start:n])
            ids_out.append(ids[i, start:n].tolist())
    return acts_out, ids_out


def next_token_labels(ids: Sequence[Sequence[int]], targets: Sequence[int]) -> list[np.ndarray]:
    """Per text ``[T − 1]``: whether the token after each position (but the last) is a target."""
    tgt = set(int(t) for t in targets)
    return [np.array([i in tgt for i in seq[1:]], dtype=bool) for seq in ids]


def fit_token_detector(
    latents: Sequence[int], acts: Sequence[np.ndarray], ids: Sequence[Sequence[int]], targets: Sequence[int]
) -> dict[str, Any] | None:
    """Logistic regression "the next token is toxic" on per-position activations; None if one class.

    Classes are weighted to balance (toxic next tokens are rare), so p = 0.5 is where the evidence
    for a toxic next token equals that against; the gate calibration then sets the intercept.
    """
    labels = next_token_labels(ids, targets)
    x = np.concatenate([a[:-1] for a in acts if len(a) > 1] or [np.zeros((0, len(latents)))])
    y = np.concatenate([lab for a, lab in zip(acts, labels, strict=True) if len(a) > 1] or [np.zeros(0, bool)])
    return fit_detector(latents, x, y, pooling="token", class_weight="balanced", target="next-token")
