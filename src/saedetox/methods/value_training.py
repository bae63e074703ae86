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
   last step and a Polyak-averaged target network (rate 0.1). MSE, AdamW at lr 3e-4 (the official
   rate) with a linear warm-up and decay, at most 3 epochs (the official number).
5. **Held out** (:func:`split_by_prompt`): 20% of the prompts, with all their trajectories, are held out;
   training stops when their loss stops improving and keeps the best epoch's weights. The record
   keeps the held-out loss per epoch, the loss of the constant prediction (the training toxic share)
   for scale, and the held-out AUROC of ``−Q`` at each trajectory's last step for its label.
"""

from __future__ import annotations

import copy
import math
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
    epochs: int = 3  # at most (the official 3); early stopping on the held-out loss may end it sooner
    lr: float = 3e-4  # the official AdamW learning rate (no weight decay)
    warmup: float = 0.1  # share of the steps the learning rate warms up over, then decays linearly to 0
    batch_size: int = 32
    polyak: float = 0.1
    val_share: float = 0.2  # share of the training prompts held out (with all their trajectories)
    patience: int = 1  # epochs without a better held-out loss before training stops
    seed: int = 0

    def validate(self) -> ValueTrainConfig:
        if self.target not in TARGETS:
            raise SaedetoxError(f"Value target must be one of {', '.join(TARGETS)}, not {self.target!r}.")
        if min(self.n_prompts, self.samples, self.max_new_tokens, self.epochs, self.batch_size, self.patience) < 1:
            raise SaedetoxError(
                "n_prompts, samples, max_new_tokens, epochs, batch_size and patience must be at least 1."
            )
        if not (0 < self.top_p <= 1 and 0 <= self.threshold <= 1 and 0 <= self.val_share < 1):
            raise SaedetoxError("top_p must be in (0, 1], threshold in [0, 1] and val_share in [0, 1).")
        if not (0 < self.lr < math.inf and 0 <= self.warmup < 1):
            raise SaedetoxError("lr must be a positive number and warmup in [0, 1).")
        return self


@dataclass
class Trajectory:
    """Token ids of one prompt and continuation (BOS first), its terminal reward (−1 toxic, 0 clean), its prompt."""

    ids: list[int]
    reward: float
    group: int = 0  # the prompt it continues: a held-out split keeps a prompt's trajectories together


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
            out.append(Trajectory(p_ids[i] + conts[i][j], -1.0 if row[j] >= cfg.threshold else 0.0, i))
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


def split_by_prompt(trajs: Sequence[Trajectory], share: float, seed: int) -> tuple[list[Trajectory], list[Trajectory]]:
    """``(train, held_out)``: about ``share`` of the prompts (all their trajectories) held out, chosen by ``seed``."""
    groups = sorted({t.group for t in trajs})
    random.Random(seed).shuffle(groups)
    held = set(groups[: int(len(groups) * share)])
    return [t for t in trajs if t.group not in held], [t for t in trajs if t.group in held]


def train_value_model(vm: ValueModel, trajs: list[Trajectory], cfg: ValueTrainConfig, pad: int) -> dict[str, Any]:
    """Fit ``vm`` (in place) to ``trajs``; returns the training record (sizes, toxic share, losses, held-out AUROC).

    AdamW at ``lr`` with a linear warm-up over ``warmup`` of the steps and a linear decay to 0 (the official
    schedule's shape). With a held-out split (``val_share`` of the prompts), the held-out loss is measured
    after every epoch, training stops once it has not improved for ``patience`` epochs, and the weights of
    the best epoch are kept.
    """
    if not trajs:
        raise SaedetoxError("No training trajectories for the value model.")
    rng = random.Random(cfg.seed)
    train, val = split_by_prompt(trajs, cfg.val_share, cfg.seed)
    if not train:
        raise SaedetoxError("The held-out share leaves no training trajectories for the value model.")
    dev = next(vm.parameters()).device
    target_vm = copy.deepcopy(vm).eval() if cfg.target == "sarsa" else None
    opt = torch.optim.AdamW(vm.parameters(), lr=cfg.lr, weight_decay=0.0)
    steps = cfg.epochs * -(-len(train) // cfg.batch_size)
    warm = max(1, round(cfg.warmup * steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: (i + 1) / warm if i < warm else max(0.0, (steps - i) / max(1, steps - warm))
    )
    curve: list[float] = []
    best: tuple[float, int, dict[str, torch.Tensor]] | None = None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        for epoch in range(cfg.epochs):
            vm.train()
            rng.shuffle(train)
            for s in range(0, len(train), cfg.batch_size):
                loss = value_loss(vm, _batch(train[s : s + cfg.batch_size], pad, dev), cfg.target, target_vm)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                if target_vm is not None:
                    with torch.no_grad():
                        for pt, p in zip(target_vm.parameters(), vm.parameters(), strict=True):
                            pt.lerp_(p, cfg.polyak)
            vm.eval()
            if not val:
                note(f"value model: epoch {epoch + 1}/{cfg.epochs}, last batch loss {loss.item():.4f}")
                continue
            curve.append(_mean_loss(vm, val, pad, dev, cfg))
            note(f"value model: epoch {epoch + 1}/{cfg.epochs}, held-out loss {curve[-1]:.4f}")
            if best is None or curve[-1] < best[0]:
                best = (curve[-1], epoch, {k: v.detach().clone() for k, v in vm.state_dict().items()})
            elif epoch - best[1] >= cfg.patience:
                break
    if best is not None:
        vm.load_state_dict(best[2])
    vm.eval()
    share = sum(t.reward < 0 for t in train) / len(train)
    record: dict[str, Any] = {
        "trajectories": len(trajs),
        "toxic_share": sum(t.reward < 0 for t in trajs) / len(trajs),
        "train_loss": _mean_loss(vm, train, pad, dev, cfg),
    }
    if val:
        record.update(
            held_out=len(val),
            val_loss=best[0] if best is not None else None,
            val_loss_curve=curve,
            best_epoch=best[1] + 1 if best is not None else None,
            epochs_run=len(curve),
            # the held-out loss of predicting the training toxic share at every pair: what a value model must beat
            val_loss_constant=_mean_loss(None, val, pad, dev, cfg, share),
            val_auroc=held_out_auroc(vm, val, pad, dev, cfg.batch_size),
        )
    return record


@torch.no_grad()
def terminal_values(
    vm: ValueModel, trajs: Sequence[Trajectory], pad: int, dev: torch.device, batch: int
) -> list[float]:
    """``Q(s_{T−1}, a_T)`` per trajectory: the value model's estimate for its last token (the step that ends it)."""
    out: list[float] = []
    for s in range(0, len(trajs), batch):
        ids, mask, _, lengths = _batch(trajs[s : s + batch], pad, dev)
        q = vm(ids, mask)
        rows = torch.arange(len(ids), device=dev)
        last = (lengths - 1).clamp_min(1)
        out += q[rows, last - 1, ids[rows, last]].float().tolist()
    return out


def held_out_auroc(
    vm: ValueModel, trajs: Sequence[Trajectory], pad: int, dev: torch.device, batch: int
) -> float | None:
    """AUROC of −``Q`` at each trajectory's last step for its toxic label (None: one class only)."""
    labels = [t.reward < 0 for t in trajs]
    if all(labels) or not any(labels):
        return None
    from sklearn.metrics import roc_auc_score

    return round(float(roc_auc_score(labels, [-q for q in terminal_values(vm, trajs, pad, dev, batch)])), 6)


@torch.no_grad()
def _mean_loss(
    vm: ValueModel | None,
    trajs: list[Trajectory],
    pad: int,
    dev: torch.device,
    cfg: ValueTrainConfig,
    constant: float | None = None,
) -> float:
    """The MC loss over ``trajs`` (batch means weighted by batch size); ``vm`` None: of the constant ``−constant``."""
    total = 0.0
    for s in range(0, len(trajs), cfg.batch_size):
        chunk = trajs[s : s + cfg.batch_size]
        batch = _batch(chunk, pad, dev)
        if vm is None:
            valid = batch[1][:, 1:].bool()
            goal = batch[2].unsqueeze(1).expand_as(valid)[valid]
            loss = F.mse_loss(torch.full_like(goal, -float(constant or 0.0)), goal)
        else:
            loss = value_loss(vm, batch, "mc")
        total += float(loss) * len(chunk)
    return round(total / len(trajs), 6)
