"""Model Surgery's toxicity probe: a 2-class linear head on the final, normed, mean-pooled hidden state.

As in lucywang720/model-surgery (``train/run_pplm_discrim_train.py``): the features are the last
entry of the hidden states (after the final norm), averaged over each text's tokens (the
tokenizer's own encoding; padding excluded by the attention mask); the head is
``nn.Linear(d, 2)`` with bias, trained with Adam on ``log_softmax`` + NLL, lr 1e-4, 20 epochs,
batch 16, on a random 90 % of the texts (10 % held out); the probe vector is the toxic-class
row of the weight, raw. Features are float32 (published: fp16).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from saedetox.methods.contrast import ContrastData, Reducer, pooled_outputs
from saedetox.model.arch import final_norm
from saedetox.model.load import LoadedModel
from saedetox.model.sites import hidden_from_output

FEATURES = "probe-features"  # the reducer's name, and the ContrastData.cache key of features from a shared pass


@dataclass(frozen=True)
class ProbeConfig:
    """How the probe is trained (defaults: the published recipe)."""

    epochs: int = 20
    lr: float = 1e-4
    batch_size: int = 16
    holdout: float = 0.1
    seed: int = 0


@dataclass
class Probe:
    vector: torch.Tensor  # the toxic-class row of the head's weight, raw, [d] float32 on CPU
    train_acc: float
    heldout_acc: float | None
    layer: int  # index into HF hidden_states: n_layers = after the final norm
    site: str  # the module whose output was pooled


def feature_site(lm: LoadedModel) -> tuple[str, nn.Module]:
    """The final norm (``ln_f`` / ``norm`` / ``final_layer_norm``); post-LN models without one: the last layer."""
    names = {id(m): n for n, m in lm.model.named_modules()}
    mod = final_norm(lm.model, lm.layers_path) or lm.layers[-1]
    return names[id(mod)], mod


def final_features(lm: LoadedModel, texts: Sequence[str], batch_size: int = 32, max_length: int = 128) -> torch.Tensor:
    """Mean over each text's tokens of the final normed hidden state, ``[n, d]`` float32 on CPU (in ``texts`` order)."""
    return pooled_outputs(lm, texts, feature_reducer(lm), batch_size, max_length)[FEATURES]


def feature_reducer(lm: LoadedModel) -> dict[str, Reducer]:
    """The probe's features as a :func:`~saedetox.methods.contrast.pooled_outputs` reducer."""
    _, module = feature_site(lm)

    def mean(output: Any, mask: torch.Tensor) -> torch.Tensor:
        m = mask.float()
        h = hidden_from_output(output).float().reshape(*m.shape, -1)
        return (h * m[..., None]).sum(1) / m.sum(1, keepdim=True)

    return {FEATURES: (module, mean)}


def train_probe(x: torch.Tensor, y: torch.Tensor, cfg: ProbeConfig) -> tuple[torch.Tensor, float, float | None]:
    """Train ``nn.Linear(d, 2)`` on (x, y); return (toxic-class row, train accuracy, held-out accuracy or None)."""
    g = torch.Generator().manual_seed(cfg.seed)
    n = x.shape[0]
    perm = torch.randperm(n, generator=g)
    n_hold = int(round(cfg.holdout * n)) if n >= 10 else 0
    hold, train = perm[:n_hold], perm[n_hold:]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        head = nn.Linear(x.shape[1], 2)  # default init, as published
    opt = torch.optim.Adam(head.parameters(), lr=cfg.lr)
    with torch.enable_grad():
        for _ in range(cfg.epochs):
            order = train[torch.randperm(len(train), generator=g)]
            for s in range(0, len(order), cfg.batch_size):
                idx = order[s : s + cfg.batch_size]
                opt.zero_grad()
                F.nll_loss(F.log_softmax(head(x[idx]), -1), y[idx]).backward()
                opt.step()
    with torch.no_grad():
        pred = head(x).argmax(-1) == y
    heldout = float(pred[hold].float().mean()) if n_hold else None
    return head.weight[1].detach().clone(), float(pred[train].float().mean()), heldout


def train_toxicity_probe(lm: LoadedModel, data: ContrastData, cfg: ProbeConfig | None = None) -> Probe:
    """The probe on ``data`` (toxic = class 1)."""
    cfg = cfg or ProbeConfig()
    sides = [data.cache.get((FEATURES, id(lm.model), side)) for side in ("toxic", "clean")]  # from a shared pass
    if sides[0] is None or sides[1] is None:
        sides = [final_features(lm, data.toxic), final_features(lm, data.clean)]
    x = torch.cat(sides)
    y = torch.cat([torch.ones(len(data.toxic), dtype=torch.long), torch.zeros(len(data.clean), dtype=torch.long)])
    vector, train_acc, heldout = train_probe(x, y, cfg)
    name, _ = feature_site(lm)
    return Probe(vector, round(train_acc, 4), None if heldout is None else round(heldout, 4), lm.n_layers, name)
