"""Attribution scores: which steering directions lower the probability of toxic tokens.

First-order (attribution-patching style) estimate of what constant steering does to the
model's output: adding a vector δ at every position of a hook changes a log-likelihood L by
about Σ_t ∇ₓL(t) · δ. Two gradients summarise a data set:

* ``G_tox``: gradient of the summed log-probability of *toxic tokens* (the tokens whose
  log-odds of appearing in toxic rather than clean text is highest) at the positions that
  predict them, on toxic texts;
* ``G_clean``: gradient of the summed log-probability of every next token on clean texts.

For a unit direction û, steering with −û changes the toxic-token log-probability by
−û·G_tox / n_tox and the clean log-probability by −û·G_clean / n_clean. Discovery's
``attribution`` method ranks SAE latents by the first (larger is better) minus the harm in the
second, so it selects the latents whose removal most suppresses toxic words at least cost.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from saedetox.model.load import LoadedModel
from saedetox.model.sites import edit_at
from saedetox.model.tokens import tokenize_batch


@dataclass
class Gradients:
    tox: torch.Tensor  # [d]
    clean: torch.Tensor  # [d]
    n_tox: int
    n_clean: int
    toxic_tokens: list[int]


def toxic_token_ids(
    lm: LoadedModel, toxic: Sequence[str], clean: Sequence[str], top: int = 200, min_count: int = 5
) -> list[int]:
    """Token ids most over-represented in toxic vs clean text (smoothed log-odds)."""
    tok = lm.tokenizer
    ct: Counter[int] = Counter()
    cc: Counter[int] = Counter()
    for texts, counter in ((toxic, ct), (clean, cc)):
        for ids in tok(list(texts), add_special_tokens=False)["input_ids"]:
            counter.update(ids)
    nt, nc = sum(ct.values()) or 1, sum(cc.values()) or 1
    special = set(tok.all_special_ids)
    scored = []
    for i, n in ct.items():
        if n < min_count or i in special:
            continue
        lo = math.log((n + 0.5) / nt) - math.log((cc.get(i, 0) + 0.5) / nc)
        scored.append((lo, i))
    scored.sort(reverse=True)
    return [i for lo, i in scored[:top] if lo > 0]


def _grad_at_hook(
    lm: LoadedModel, hook: str, texts: Sequence[str], targets: set[int] | None, batch_size: int
) -> tuple[torch.Tensor, int]:
    """Σ over real positions of ∂(Σ target log-probs)/∂x at ``hook``, and the number of targets."""
    site = lm.site(hook)
    total = torch.zeros(lm.d_model, dtype=torch.float64)
    count = 0
    holder: dict[str, torch.Tensor] = {}

    def grab(x: torch.Tensor) -> torch.Tensor:
        x = x.detach().requires_grad_(True)
        holder["x"] = x
        return x

    handle = edit_at(site, grab)
    try:
        for s in range(0, len(texts), batch_size):
            batch = tokenize_batch(lm.tokenizer, texts[s : s + batch_size], True, "right", lm.device, 128)
            ids, mask = batch["input_ids"], batch["attention_mask"].bool()
            with torch.enable_grad():
                logits = lm.model(**batch, use_cache=False).logits[:, :-1].float()
                nxt = ids[:, 1:]
                keep = mask[:, 1:]
                if targets is not None:
                    keep = keep & torch.isin(nxt, torch.tensor(sorted(targets), device=nxt.device))
                if not bool(keep.any()):
                    continue
                lp = torch.log_softmax(logits, -1).gather(-1, nxt.unsqueeze(-1)).squeeze(-1)
                # the gradient at the hook only: no weight gradients are computed (a third of the backward)
                (g,) = torch.autograd.grad((lp * keep).sum(), holder["x"])
            real = mask.clone()
            real[:, 0] = False  # BOS is steered too, but its residual barely matters; keep it out
            total += (g * real.unsqueeze(-1)).sum((0, 1)).double().cpu()
            count += int(keep.sum())
    finally:
        handle.remove()
        lm.model.zero_grad(set_to_none=True)
    return total, count


def gradients(
    lm: LoadedModel, hook: str, toxic: Sequence[str], clean: Sequence[str], batch_size: int = 16
) -> Gradients:
    targets = toxic_token_ids(lm, toxic, clean)
    g_tox, n_tox = _grad_at_hook(lm, hook, toxic, set(targets), batch_size)
    g_cln, n_cln = _grad_at_hook(lm, hook, clean, None, batch_size)
    return Gradients(g_tox.float(), g_cln.float(), max(n_tox, 1), max(n_cln, 1), targets)


def latent_scores(directions: torch.Tensor, grads: Gradients, harm_weight: float = 1.0) -> torch.Tensor:
    """Per latent: toxic log-prob drop per unit of −û_f minus ``harm_weight`` × clean log-prob drop."""
    u = directions.float()
    u = u / u.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    tox_drop = (u @ grads.tox.to(u.device)) / grads.n_tox  # steering with −û lowers toxic log-prob by this
    clean_drop = (u @ grads.clean.to(u.device)) / grads.n_clean
    return tox_drop - harm_weight * clean_drop.clamp_min(0)
