"""``saedetox train-sae``: train an SAE on a model's activations and save an SAE-Lens folder.

Recipe (documented choice): **BatchTopK** (Bussmann et al. 2024) with the **AuxK** dead-latent
loss of Gao et al. (2024), trained on our own activation capture (HF module hooks, so the
activations are exactly those the steering hooks see). Activations are scaled so that
E‖x‖ = sqrt(d_in) during training (SAE-Lens' ``expected_average_only_in``), decoder rows are
kept unit-norm, and the encoder starts as the decoder's transpose. At the end, BatchTopK is
turned into a JumpReLU SAE with one global threshold (the mean over training batches of the
smallest kept activation), the conversion SAE-Lens also uses, and the norm scale is folded
into the weights, so the saved folder is a plain ``jumprelu`` SAE-Lens SAE on raw activations.

Text: documents of the LM's own training role (``lm``) by default — clean and toxic registers
alike, so toxicity latents exist — cut into windows of ``context`` tokens with BOS prepended
(BOS positions are not trained on). Quality on held-out text is reported: L0, explained
variance, dead share and the CE-loss change when the SAE is spliced in.
"""

from __future__ import annotations

import json
import math
import random
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from saedetox.data.corpus import SOURCES, heldout_texts, source_docs
from saedetox.data.location import resolve_data_dir
from saedetox.errors import SaedetoxError
from saedetox.io import atomic_write_text
from saedetox.model.capture import run_to_hooks
from saedetox.model.load import LoadedModel, load_model
from saedetox.progress import note, progress_bar
from saedetox.sae.load import load_sae
from saedetox.sae.preflight import preflight
from saedetox.train.config import SAETrainConfig

# --------------------------------------------------------------------------- data


def corpus_texts(data_dir: str | None, seed: int, role: str = "lm") -> list[str]:
    """Unweighted documents of a corpus role, shuffled with ``seed``."""
    root = resolve_data_dir(data_dir)
    if role == "lm":
        docs = [d for s in SOURCES for d in source_docs(root, s, "lm")]
    else:
        docs = heldout_texts(root)
    random.Random(seed).shuffle(docs)
    return docs


def token_windows(lm: LoadedModel, texts: list[str], context: int) -> Iterator[list[int]]:
    """Windows of ``context`` tokens (BOS first), cutting documents joined by EOS."""
    tok = lm.tokenizer
    bos = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
    eos = tok.eos_token_id
    buf: list[int] = []
    for start in range(0, len(texts), 256):
        for ids in tok(texts[start : start + 256], add_special_tokens=False)["input_ids"]:
            buf.extend(ids)
            if eos is not None:
                buf.append(eos)
            while len(buf) >= context - 1:
                yield [bos] + buf[: context - 1]
                buf = buf[context - 1 :]


def activation_stream(
    lm: LoadedModel, hook: str, texts: list[str], context: int, batch: int = 32
) -> Iterator[torch.Tensor]:
    """Float32 CPU activations [n, d] at ``hook``, BOS positions dropped, batch by batch."""
    windows = token_windows(lm, texts, context)
    while True:
        rows = [w for _, w in zip(range(batch), windows, strict=False)]
        if not rows:
            return
        ids = torch.tensor(rows, device=lm.device)
        acts = run_to_hooks(lm, {"input_ids": ids, "attention_mask": torch.ones_like(ids)}, [hook])[hook]
        yield acts[:, 1:].reshape(-1, acts.shape[-1]).float().cpu()


# --------------------------------------------------------------------------- model


class BatchTopKSAE(torch.nn.Module):
    def __init__(self, d_in: int, width: int, k: int, seed: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        w_dec = torch.randn(width, d_in, generator=g)
        w_dec /= w_dec.norm(dim=-1, keepdim=True)
        self.W_dec = torch.nn.Parameter(w_dec)
        self.W_enc = torch.nn.Parameter(w_dec.T.clone())
        self.b_enc = torch.nn.Parameter(torch.zeros(width))
        self.b_dec = torch.nn.Parameter(torch.zeros(d_in))
        self.k = k

    def pre(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu((x - self.b_dec) @ self.W_enc + self.b_enc)

    def batch_topk(self, pre: torch.Tensor) -> tuple[torch.Tensor, float]:
        flat = pre.flatten()
        n = min(self.k * pre.shape[0], flat.numel())
        vals, idx = torch.topk(flat, n, sorted=False)
        acts = torch.zeros_like(flat).scatter_(0, idx, vals).view_as(pre)
        return acts, float(vals.min().detach())

    def decode(self, acts: torch.Tensor) -> torch.Tensor:
        return acts @ self.W_dec + self.b_dec

    @torch.no_grad()
    def normalise_decoder(self) -> None:
        self.W_dec /= self.W_dec.norm(dim=-1, keepdim=True).clamp_min(1e-8)

    @torch.no_grad()
    def remove_parallel_grad(self) -> None:
        if self.W_dec.grad is not None:
            parallel = (self.W_dec.grad * self.W_dec).sum(-1, keepdim=True)
            self.W_dec.grad -= parallel * self.W_dec


def _aux_loss(sae: BatchTopKSAE, pre: torch.Tensor, err: torch.Tensor, dead: torch.Tensor, aux_k: int) -> torch.Tensor:
    if not bool(dead.any()):
        return pre.new_zeros(())
    masked = pre * dead
    k = min(aux_k, int(dead.sum()))
    vals, idx = torch.topk(masked, k, dim=-1)
    aux = torch.zeros_like(pre).scatter_(-1, idx, vals)
    recon = aux @ sae.W_dec
    return ((recon - err) ** 2).sum(-1).mean() / ((err - err.mean(0)) ** 2).sum(-1).mean().clamp_min(1e-8)


# --------------------------------------------------------------------------- train


def train_sae(cfg: SAETrainConfig, texts: list[str] | None = None, eval_texts: list[str] | None = None) -> dict:
    """Train and write an SAE-Lens folder to ``cfg.out``; return the quality report.

    ``texts`` / ``eval_texts`` replace the reference corpus (training) and its held-out split (evaluation).
    """
    if cfg.k < 1 or cfg.width < cfg.k:
        raise SaedetoxError(f"Need 1 <= k <= width (got k={cfg.k}, width={cfg.width}).")
    t0 = time.time()
    torch.manual_seed(cfg.seed)
    note(f"loading model {cfg.model}")
    lm = load_model(cfg.model, dtype="float32", device=cfg.device)
    lm.site(cfg.hook)
    d = lm.d_model
    lr = cfg.lr or 2e-4 * math.sqrt(16384 / cfg.width)
    aux_k = cfg.aux_k or d // 2
    note("reading the training text")
    texts = texts if texts is not None else corpus_texts(cfg.data_dir, cfg.seed)
    state = {"stream": activation_stream(lm, cfg.hook, texts, cfg.context), "epoch": 0}

    def fill() -> torch.Tensor:
        """The next shuffled buffer of activations; the text is cycled (reshuffled) when it runs out."""
        chunks, n, empty_epochs = [], 0, 0
        while n < cfg.buffer_tokens:
            a = next(state["stream"], None)
            if a is None:
                empty_epochs = empty_epochs + 1 if not chunks else 0
                if empty_epochs > 1:
                    raise SaedetoxError("No training text for the SAE: the text is shorter than one context window.")
                state["epoch"] += 1
                shuffled = list(texts)
                random.Random(cfg.seed + state["epoch"]).shuffle(shuffled)
                state["stream"] = activation_stream(lm, cfg.hook, shuffled, cfg.context)
                continue
            chunks.append(a)
            n += a.shape[0]
        buf = torch.cat(chunks)
        return buf[torch.randperm(buf.shape[0], generator=torch.Generator().manual_seed(cfg.seed + len(chunks)))]

    buf = fill()
    scale = math.sqrt(d) / float(buf.norm(dim=-1).mean())
    sae = BatchTopKSAE(d, cfg.width, cfg.k, cfg.seed).to(lm.device)
    with torch.no_grad():
        sae.b_dec.copy_((buf * scale).mean(0).to(lm.device))
    opt = torch.optim.Adam(sae.parameters(), lr=lr, betas=(0.9, 0.999))
    steps = max(1, cfg.tokens // cfg.batch_size)
    since_fired = torch.zeros(cfg.width, device=lm.device)
    thresholds: list[float] = []
    pos, log = 0, []
    with progress_bar(f"train-sae w={cfg.width}", total=steps) as bar:
        for step in range(steps):
            if pos + cfg.batch_size > buf.shape[0]:
                buf, pos = fill(), 0
            x = buf[pos : pos + cfg.batch_size].to(lm.device) * scale
            pos += cfg.batch_size
            pre = sae.pre(x)
            acts, thr = sae.batch_topk(pre)
            recon = sae.decode(acts)
            err = x - recon
            mse = (err**2).sum(-1).mean() / ((x - x.mean(0)) ** 2).sum(-1).mean()
            fired = (acts > 0).any(0)
            since_fired = torch.where(fired, 0.0, since_fired + cfg.batch_size)
            dead = (since_fired > cfg.dead_tokens).float()
            aux = _aux_loss(sae, pre, err.detach(), dead, aux_k)
            loss = mse + cfg.aux_coef * aux
            opt.zero_grad(set_to_none=True)
            loss.backward()
            sae.remove_parallel_grad()
            for group in opt.param_groups:  # linear decay over the last 20% of steps
                group["lr"] = lr * min(1.0, (steps - step) / (0.2 * steps))
            opt.step()
            sae.normalise_decoder()
            if step >= steps // 2:
                thresholds.append(thr)
            if step % 50 == 0 or step == steps - 1:
                log.append(
                    {"step": step, "fvu": round(mse.item(), 4), "aux": round(aux.item(), 4), "dead": int(dead.sum())}
                )
            bar.advance(1, description=f"train-sae w={cfg.width} fvu {mse.item():.3f}")
    threshold = float(np.mean(thresholds)) if thresholds else 0.0
    train_seconds = time.time() - t0
    out = Path(cfg.out)
    save_jumprelu(sae, threshold, scale, out, cfg, lm)
    report = evaluate_sae_dir(lm, out, cfg, eval_texts)
    report.update(
        {
            "config": asdict(cfg),
            "lr": lr,
            "aux_k": aux_k,
            "threshold": threshold,
            "norm_scale": scale,
            "train_seconds": round(train_seconds, 1),
            "log": log,
        }
    )
    atomic_write_text(out / "training.json", json.dumps(report, indent=2))
    return report


def save_jumprelu(
    sae: BatchTopKSAE, threshold: float, scale: float, out: Path, cfg: SAETrainConfig, lm: LoadedModel
) -> None:
    """Fold the norm scale and write a ``jumprelu`` SAE-Lens folder (fp16 weights)."""
    import sae_lens  # deferred: sae_lens imports transformer_lens (~10 s); only saving the SAE needs it

    conf = sae_lens.JumpReLUSAEConfig(d_in=lm.d_model, d_sae=cfg.width, dtype="float32")
    md = conf.metadata
    md.hook_name = cfg.hook
    md.model_name = "saedetox-reference" if cfg.model == "reference" else Path(cfg.model).name or cfg.model
    md.model_class_name = "AutoModelForCausalLM"
    md.prepend_bos = True
    md.context_size = cfg.context
    md.dataset_path = "saedetox reference corpus (role lm)" if cfg.data_dir is None else cfg.data_dir
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        js = sae_lens.JumpReLUSAE(conf)
    with torch.no_grad():
        js.W_enc.copy_(sae.W_enc.detach().cpu() * scale)  # pre-activations unchanged on raw x
        js.b_enc.copy_(sae.b_enc.detach().cpu())
        js.W_dec.copy_(sae.W_dec.detach().cpu() / scale)
        js.b_dec.copy_(sae.b_dec.detach().cpu() / scale)
        js.threshold.fill_(threshold)
    out.mkdir(parents=True, exist_ok=True)
    js = js.to(torch.float16)
    js.cfg.dtype = "float16"
    js.save_model(out)


@torch.no_grad()
def evaluate_sae_dir(lm: LoadedModel, path: Path, cfg: SAETrainConfig, texts: list[str] | None = None) -> dict:
    """L0, explained variance, dead share and CE change of a saved SAE on held-out text."""
    sae = load_sae(str(path), lm)
    if texts is None:
        texts = corpus_texts(cfg.data_dir, cfg.seed, role="lm_heldout")[: cfg.eval_texts]
    rep = preflight(lm, sae, texts=texts, hook=cfg.hook, batch_size=8)
    fired = torch.zeros(sae.d_sae, dtype=torch.bool, device=lm.device)
    n = 0
    for acts in activation_stream(lm, cfg.hook, texts, cfg.context):
        fired |= (sae.encode(acts.to(lm.device)) > 0).any(0)
        n += acts.shape[0]
    return {
        "width": sae.d_sae,
        "hook": cfg.hook,
        "mean_l0": rep.mean_l0,
        "explained_variance": rep.explained_variance,
        "dead_share": 1.0 - float(fired.float().mean()),
        "ce_clean": rep.ce_clean,
        "ce_spliced": rep.ce_spliced,
        "ce_delta": rep.ce_delta,
        "eval_tokens": rep.n_tokens,
        "dead_eval_tokens": n,
    }
