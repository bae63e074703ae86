"""Exact nucleus (top-p) sampling by Gumbel-max with token-indexed noise.

The sampled token is ``argmax over the nucleus of p_v / E_v`` with ``E_v = −log U_v ~ Exp(1)``
(Gumbel-max, one log per entry): an exact draw from the renormalised nucleus of transformers'
``TemperatureLogitsWarper`` + ``TopPLogitsWarper`` (a token is kept when the probability mass
strictly above it is < p; the top token always). Because the noise ``U`` is indexed by token id,
two nearly identical distributions under the same noise pick the same token most of the time:
paired runs (unsteered vs steered on the same :class:`~saedetox.eval.sampler.noise.NoiseStream`) are
coupled token by token, which an inverse-CDF sampler over sorted tokens is not.

Two strategies give the same token for the same noise (up to float rounding exactly at the
nucleus boundary):

* ``reject`` (CPU default), no sort: take the global winner; if the mass strictly above it is ≥ p
  it lies outside the nucleus, and so does every token at most as probable (the nucleus is an
  upper set in probability), so mask those and retry on the rows concerned (1–2 rounds). It
  checks on the host whether any row needs another round.
* ``sort`` (accelerator default): one sort per step, no host synchronisation, like transformers'
  own warper.
"""

from __future__ import annotations

from typing import Literal

import torch

Strategy = Literal["auto", "reject", "sort"]


def gumbel_nucleus_sample(
    logits: torch.Tensor,
    u: torch.Tensor,
    top_p: float,
    temperature: float = 1.0,
    strategy: Strategy = "auto",
) -> torch.Tensor:
    """Token ids ``[B]`` from the nucleus of ``softmax(logits / temperature)``, with the uniforms ``u`` ``[B, V]``."""
    return nucleus_sample_exponential(logits, u.log().neg_(), top_p, temperature, strategy)


def nucleus_sample_exponential(
    logits: torch.Tensor,
    e: torch.Tensor,
    top_p: float,
    temperature: float = 1.0,
    strategy: Strategy = "auto",
) -> torch.Tensor:
    """As :func:`gumbel_nucleus_sample` with the exponential noise ``e = −log u`` given (left unmodified)."""
    z = logits.float()
    if temperature != 1.0:
        z = z / temperature
    probs = z.softmax(-1)
    key = probs / e  # p / E, E ~ Exp(1): argmax = argmax(log p + Gumbel); every key ≥ 0
    if top_p >= 1.0:
        return key.argmax(-1)
    if strategy == "auto":
        strategy = "reject" if logits.device.type == "cpu" else "sort"
    if strategy == "sort":
        return _sorted(probs, key, top_p)
    return _reject(probs, key, top_p)


def _mass_above(probs: torch.Tensor, p_win: torch.Tensor) -> torch.Tensor:
    return torch.where(probs > p_win, probs, 0.0).sum(-1)  # the same values as masked_fill(probs <= p_win, 0), faster


def _reject(probs: torch.Tensor, key: torch.Tensor, top_p: float, max_rounds: int = 64) -> torch.Tensor:
    win = key.argmax(-1)
    p_win = probs.gather(1, win.unsqueeze(-1))
    bad = _mass_above(probs, p_win) >= top_p  # the winner lies outside the nucleus
    rows = bad.nonzero().squeeze(1)
    for _ in range(max_rounds):
        if rows.numel() == 0:  # a host check: this strategy is for the CPU
            return win
        pr, kr = probs[rows], key[rows]
        kr = kr.masked_fill(pr <= p_win[rows], -1.0)  # every token at most as probable as an outside winner
        key[rows] = kr
        w = kr.argmax(-1)
        win[rows] = w
        p_win[rows] = pr.gather(1, w.unsqueeze(-1))
        rows = rows[_mass_above(pr, p_win[rows]) >= top_p]
    if rows.numel():  # never seen in practice: settle the remaining rows by the sort
        win[rows] = _sorted(probs[rows], key[rows], top_p)
    return win


def _sorted(probs: torch.Tensor, key: torch.Tensor, top_p: float) -> torch.Tensor:
    sp, order = probs.sort(-1, descending=True)
    inside = (sp.cumsum(-1) - sp) < top_p  # mass strictly above (in sorted order) < p
    inside[:, 0] = True
    ks = key.gather(1, order).masked_fill_(~inside, -1.0)
    return order.gather(1, ks.argmax(-1, keepdim=True)).squeeze(1)
