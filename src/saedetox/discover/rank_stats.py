"""Per-text latent statistics of a set of texts, per-latent AUROC, and the ranking scores built on them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.stats import rankdata

from saedetox.errors import SaedetoxError
from saedetox.model.capture import iter_activations
from saedetox.model.load import LoadedModel
from saedetox.sae.loaded import LoadedSAE

METHODS: tuple[str, ...] = ("auroc", "paired", "meandiff", "freqratio", "paper-max", "paper-freq", "attribution")


@dataclass
class TextStats:
    """Per-text latent statistics for one set of texts."""

    max_act: np.ndarray  # [n_texts, d_sae]
    sum_act: np.ndarray  # [d_sae] over all tokens
    fire_count: np.ndarray  # [d_sae] over all tokens
    n_tokens: int
    top: list[list[tuple[float, int, int]]] = field(default_factory=list)  # per latent: (act, text, position)
    token_ids: list[list[int]] = field(default_factory=list)


@torch.no_grad()
def text_stats(
    lm: LoadedModel,
    sae: LoadedSAE,
    texts: Sequence[str],
    hook: str | None = None,
    batch_size: int = 32,
    track: Sequence[int] | None = None,
    max_length: int = 128,
) -> TextStats:
    """Encode ``texts`` at the SAE's hook; collect per-text maxima and token-level sums."""
    hook = hook or sae.hook_name
    d_sae = sae.d_sae
    max_act = np.zeros((len(texts), d_sae), dtype=np.float32)
    sum_act = torch.zeros(d_sae, dtype=torch.float64)
    fire = torch.zeros(d_sae, dtype=torch.float64)
    n_tok = 0
    track_idx = torch.tensor(list(track or []), dtype=torch.long)
    top: list[list[tuple[float, int, int]]] = [[] for _ in range(len(track_idx))]
    token_ids: list[list[int]] = []
    row = 0
    for acts, mask, ids in iter_activations(lm, texts, [hook], batch_size, sae.prepend_bos, "right", max_length):
        m = mask.bool().clone()
        if sae.prepend_bos:
            m[:, 0] = False
        z = sae.encode(acts[hook]).float()  # [B, T, d_sae]
        z = z * m.unsqueeze(-1)
        max_act[row : row + z.shape[0]] = z.amax(1).cpu().numpy()
        sum_act += z.sum((0, 1)).double().cpu()
        fire += (z > 0).sum((0, 1)).double().cpu()
        n_tok += int(m.sum())
        if len(track_idx):
            zt = z[..., track_idx.to(z.device)]  # [B, T, n_track]
            for j in range(zt.shape[-1]):
                vals, flat = torch.topk(zt[..., j].flatten(), min(8, zt[..., j].numel()))
                for v, f in zip(vals.tolist(), flat.tolist(), strict=True):
                    if v > 0:
                        top[j].append((v, row + f // zt.shape[1], f % zt.shape[1]))
        for i in range(ids.shape[0]):
            token_ids.append(ids[i, : int(mask[i].sum())].tolist())
        row += z.shape[0]
    for j in range(len(top)):
        top[j] = sorted(top[j], reverse=True)[:8]
    return TextStats(max_act, sum_act.numpy(), fire.numpy(), n_tok, top, token_ids)


def auroc_per_latent(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """AUROC of each column (higher = more positive), ties counted half: the Mann–Whitney U over n_pos · n_neg.

    Per column the negatives are sorted once and each positive counts the negatives below it and
    at most equal to it (two binary searches): U is an exact integer count, so the result is the
    rank-sum formula's to the last bit, at half its cost (no sort of both sets with tie averaging).
    Non-finite values fall back to ranks (NaN propagates).
    """
    n_pos, n_neg = pos.shape[0], neg.shape[0]
    dtype = np.result_type(pos.dtype, neg.dtype, np.float32)
    if not (np.isfinite(pos).all() and np.isfinite(neg).all()):
        both = np.concatenate([pos, neg], 0)
        ranks = rankdata(np.ascontiguousarray(both.T), axis=1)  # one contiguous row per column
        return (ranks[:, :n_pos].sum(1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    p = torch.from_numpy(np.ascontiguousarray(pos.T, dtype=dtype))
    s = torch.from_numpy(np.ascontiguousarray(neg.T, dtype=dtype)).sort(dim=1).values
    below = torch.searchsorted(s, p, right=False).sum(1)
    at_most = torch.searchsorted(s, p, right=True).sum(1)
    u = (below + at_most).double().numpy() / 2  # integer counts < 2**53: exact
    return u / (n_pos * n_neg)


def rank_scores(method: str, tox: TextStats, clean: TextStats, paired: bool) -> np.ndarray:
    if method == "auroc":
        return auroc_per_latent(tox.max_act, clean.max_act)
    if method == "paired":
        if not paired:
            raise SaedetoxError("Method 'paired' needs ParaDetox-style toxic/neutral pairs (a pairs file).")
        diff = tox.max_act - clean.max_act
        sd = diff.std(0, ddof=1) + 1e-6
        return diff.mean(0) / sd * np.sqrt(diff.shape[0])
    if method == "meandiff":
        return tox.sum_act / max(tox.n_tokens, 1) - clean.sum_act / max(clean.n_tokens, 1)
    if method == "freqratio":
        return (tox.fire_count / max(tox.n_tokens, 1) + 1e-4) / (clean.fire_count / max(clean.n_tokens, 1) + 1e-4)
    if method == "paper-max":
        return tox.max_act.max(0)
    if method == "paper-freq":
        return tox.fire_count / max(tox.n_tokens, 1)
    if method == "attribution":
        raise SaedetoxError("Method 'attribution' needs the model: call discover().")
    raise SaedetoxError(f"Unknown discovery method '{method}': use one of {', '.join(METHODS)}.")
