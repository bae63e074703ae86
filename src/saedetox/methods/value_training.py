"""Training rectification's value model on the LM's own samples, labelled by a judge (Cao et al., ICLR 2023).

1. **Prompts** (:func:`training_prompts`): the first half of the words (at least 2) of the ParaDetox
   ``discovery`` texts, toxic and neutral sides alternately: the baselines' contrast data, never an
   evaluation prompt.
2. **Samples** (:func:`sample_trajectories`): ``samples`` continuations per prompt from the LM itself
   (``generate``: nucleus ``top_p``, T = 1, ``max_new_tokens``; BOS prepended as the evaluation
   sampler does), seeded.
3. **Labels**: the *training* judge (:attr:`ValueTrainConfig.judge`, by name from the judges
   registry; by default ``profanity``, not the ``probe`` judge the demo evaluates with) scores each
   continuation; reward −1 when the score is ≥ ``threshold`` (0.5), else 0. As the official data
   builder's ``most`` mode, each prompt keeps its most and its least toxic continuation.
4. **Targets** (:func:`train_value_model`): every position of a trajectory (prompt and continuation
   tokens) is a state–action pair; its target is the trajectory's terminal reward (``mc``: the
   Monte-Carlo return with γ = 1, the fixed point the official SARSA converges to on these data), or
   ``sarsa``: the official TD target ``clip(Q_target(s', a'), −1, 0)`` with the terminal reward at the
   last step and a Polyak-averaged target network (rate 0.1). MSE, AdamW.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from saedetox.data.roles import paradetox_by_role
from saedetox.errors import SaedetoxError
from saedetox.judges.registry import get_judge
from saedetox.methods.value_model import ValueModel
from saedetox.model.load import LoadedModel
from saedetox.model.tokens import tokenize_batch
from saedetox.progress import note

TARGETS = ("mc", "sarsa")


@dataclass(frozen=True)
class ValueTrainConfig:
    """How the value model is trained (every field is part of its cache key and recorded in a run's metrics)."""

    judge: str = "profanity"  # the training judge: keep it different from the judges that evaluate
    n_prompts: int = 512
    samples: int = 4  # continuations per training prompt
    max_new_tokens: int = 20
    top_p: float = 0.9
    threshold: float = 0.5  # a continuation is toxic (reward −1) when the judge scores it at least this
    n_layers: int = 1
    target: str = "mc"
    epochs: int = 4
    lr: float = 1e-3
    batch_size: int = 32
    polyak: float = 0.1
    val_share: float = 0.1
    seed: int = 0

    def validate(self) -> ValueTrainConfig:
        if self.target not in TARGETS:
            raise SaedetoxError(f"Value target must be one of {', '.join(TARGETS)}, not {self.target!r}.")
        if min(self.n_prompts, self.samples, self.max_new_tokens, self.epochs, self.batch_size) < 1:
            raise SaedetoxError("n_prompts, samples, max_new_tokens, epochs and batch_size must be at least 1.")
        if not (0 < self.top_p <= 1 and 0 <= self.threshold <= 1 and 0 <= self.val_share < 1):
            raise SaedetoxError("top_p must be in (0, 1], threshold in [0, 1] and val_share in [0, 1).")
        return self


@dataclass
class Trajectory:
    """Token ids of one prompt and continuation (BOS first), and its terminal reward (−1 toxic, 0 clean)."""

    ids: list[int]
    reward: float


def training_prompts(data_dir: str | None, n: int, seed: int = 0) -> list[str]:
    """``n`` prompts: the first half of the words of ParaDetox ``discovery`` texts, toxic and neutral alternately."""
    pairs = paradetox_by_role(data_dir)["discovery"]
    texts = [t for p in pairs for t in (p.toxic, p.neutral)]
    prompts = []
    for text in texts:
        words = text.split()
        if len(words) >= 4:
            prompts.append(" ".join(words[: max(2, len(words) // 2)]))
    random.Random(seed).shuffle(prompts)
    if not prompts:
        raise SaedetoxError("No ParaDetox discovery text is long enough to give a training prompt.")
    return prompts[:n]


@torch.no_grad()
def sample_trajectories(
    lm: LoadedModel, prompts: Sequence[str], cfg: ValueTrainConfig, batch_prompts: int = 32
) -> tuple[list[list[int]], list[list[list[int]]], list[list[str]]]:
    """Per prompt: its ids (BOS first), its ``samples`` continuations' ids (cut at EOS) and texts."""
    tok, eos = lm.tokenizer, lm.tokenizer.eos_token_id
    pad = tok.pad_token_id if tok.pad_token_id is not None else (eos if eos is not None else 0)
    p_ids, conts, texts = [], [], []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        for s in range(0, len(prompts), batch_prompts):
            enc = tokenize_batch(tok, list(prompts[s : s + batch_prompts]), True, "left", lm.device)
            out = lm.model.generate(
                **enc,
                do_sample=True,
                top_p=cfg.top_p,
                top_k=0,
                temperature=1.0,
                max_new_tokens=cfg.max_new_tokens,
                num_return_sequences=cfg.samples,
                pad_token_id=pad,
                eos_token_id=eos,
            )
            width = enc["input_ids"].shape[1]
            for i in range(enc["input_ids"].shape[0]):
                row_mask = enc["attention_mask"][i].bool()
                p_ids.append(enc["input_ids"][i][row_mask].tolist())
                rows = []
                for j in range(cfg.samples):
                    new = out[i * cfg.samples + j, width:].tolist()
                    rows.append(new[: new.index(eos)] if eos is not None and eos in new else new)
                conts.append(rows)
                texts.append(tok.batch_decode(rows, skip_special_tokens=True))
    return p_ids, conts, texts


def labelled_trajectories(lm: LoadedModel, prompts: Sequence[str], cfg: ValueTrainConfig) -> list[Trajectory]:
    """The LM's samples of ``prompts``, scored by the training judge; each prompt's most and least toxic one."""
    p_ids, conts, texts = sample_trajectories(lm, prompts, cfg)
    judge = get_judge(cfg.judge)
    flat = [t for row in texts for t in row]
    scores = judge.score(flat).reshape(len(prompts), cfg.samples)
    out = []
    for i, row in enumerate(scores.tolist()):
        order = sorted(range(cfg.samples), key=lambda j: (-row[j], j))
        for j in dict.fromkeys((order[0], order[-1])):
            out.append(Trajectory(p_ids[i] + conts[i][j], -1.0 if row[j] >= cfg.threshold else 0.0))
    return out


def _batch(trajs: Sequence[Trajectory], pad: int, dev: torch.device) -> tuple[torch.Tensor, ...]:
    """Right-padded ids, mask, rewards and per-row lengths."""
    n = max(len(t.ids) for t in trajs)
    ids = torch.full((len(trajs), n), pad, dtype=torch.long)
    mask = torch.zeros((len(trajs), n), dtype=torch.long)
    for i, t in enumerate(trajs):
        ids[i, : len(t.ids)] = torch.tensor(t.ids)
        mask[i, : len(t.ids)] = 1
    rewards = torch.tensor([t.reward for t in trajs])
    return ids.to(dev), mask.to(dev), rewards.to(dev), mask.sum(-1).to(dev)


def value_loss(
    vm: ValueModel, batch: tuple[torch.Tensor, ...], target: str = "mc", target_vm: ValueModel | None = None
) -> torch.Tensor:
    """Mean squared error of ``Q(s_t, a_t)`` (``a_t`` = token t + 1) against the MC or SARSA target."""
    ids, mask, rewards, lengths = batch
    q_all = vm(ids, mask)  # [B, T, V]: Q(s_t, ·) after token t
    actions = ids[:, 1:]
    q = q_all[:, :-1].gather(-1, actions.unsqueeze(-1)).squeeze(-1)  # [B, T-1]
    valid = mask[:, 1:].bool()
    last = (lengths - 2).clamp_min(0)
    if target == "mc":
        goal = rewards.unsqueeze(1).expand_as(q)
    else:
        with torch.no_grad():
            nxt = (target_vm or vm)(ids, mask)[:, 1:-1].gather(-1, ids[:, 2:].unsqueeze(-1)).squeeze(-1)
            goal = torch.zeros_like(q)
            goal[:, :-1] = nxt.clamp(-1.0, 0.0)
            goal[torch.arange(len(ids), device=ids.device), last] = rewards
    return F.mse_loss(q[valid], goal.detach()[valid])


def train_value_model(vm: ValueModel, trajs: list[Trajectory], cfg: ValueTrainConfig, pad: int) -> dict[str, Any]:
    """Fit ``vm`` (in place) to ``trajs``; returns the training record (sizes, toxic share, losses)."""
    if not trajs:
        raise SaedetoxError("No training trajectories for the value model.")
    rng = random.Random(cfg.seed)
    order = list(range(len(trajs)))
    rng.shuffle(order)
    n_val = int(len(order) * cfg.val_share)
    val, train = [trajs[i] for i in order[:n_val]], [trajs[i] for i in order[n_val:]]
    dev = next(vm.parameters()).device
    target_vm = copy.deepcopy(vm).eval() if cfg.target == "sarsa" else None
    opt = torch.optim.AdamW(vm.parameters(), lr=cfg.lr)
    vm.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        for epoch in range(cfg.epochs):
            rng.shuffle(train)
            for s in range(0, len(train), cfg.batch_size):
                loss = value_loss(vm, _batch(train[s : s + cfg.batch_size], pad, dev), cfg.target, target_vm)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if target_vm is not None:
                    with torch.no_grad():
                        for pt, p in zip(target_vm.parameters(), vm.parameters(), strict=True):
                            pt.lerp_(p, cfg.polyak)
            note(f"value model: epoch {epoch + 1}/{cfg.epochs}, last batch loss {loss.item():.4f}")
    vm.eval()
    record: dict[str, Any] = {
        "trajectories": len(trajs),
        "toxic_share": sum(t.reward < 0 for t in trajs) / len(trajs),
        "train_loss": _mean_loss(vm, train, pad, dev, cfg),
    }
    if val:
        record["val_loss"] = _mean_loss(vm, val, pad, dev, cfg)
    return record


@torch.no_grad()
def _mean_loss(vm: ValueModel, trajs: list[Trajectory], pad: int, dev: torch.device, cfg: ValueTrainConfig) -> float:
    """The MC loss over ``trajs`` (batch means weighted by batch size)."""
    total = 0.0
    for s in range(0, len(trajs), cfg.batch_size):
        chunk = trajs[s : s + cfg.batch_size]
        total += float(value_loss(vm, _batch(chunk, pad, dev), "mc")) * len(chunk)
    return round(total / len(trajs), 6)
