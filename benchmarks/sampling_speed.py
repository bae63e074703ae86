"""Steered-sampling throughput of saedetox's sampler vs plain ``transformers`` generate, side by side in one run.

For each batch size (sequences = prompts × k) and each steering mode (unsteered and every mode
in ``saedetox.steering.spec.MODES``), one batch of RTP challenging prompts is sampled by

* ``saedetox``: ``saedetox.eval.sampler.sampling.sample`` (the lean loop: shared prefill, preallocated
  cache, Gumbel nucleus sampler on common random numbers), and
* ``plain``: ``model.generate(do_sample=True, top_p=0.9, top_k=0)`` on the expanded batch (the
  same distribution), with the same Steerer attached,

tokenisation and decoding included in both. Every repeat runs all (sampler, mode) cells in a
shuffled order, on the next chunk of prompts, so load changes and prompt lengths hit every
cell alike; tok/s = sequences × new tokens / wall (median over repeats), and the headline
ratio is the median of the per-repeat paired ratios saedetox / plain. It then times the
conditional-perplexity scorer, prompt once (now) vs every row from scratch (before), on the
same continuations, and checks they agree.

Models: ``reference`` (the committed world, its SAE, 20 latents; CPU default), or random-weight
models built from configs with a random JumpReLU SAE: ``gpt2-small`` (GPT-2 Small shapes) and
``gemma-2-2b`` (Gemma-2-2B shapes; GPU). ``--protocol`` adds the wall time of the full RTP
challenging protocol (1,196 prompts × 25 samples × 20 tokens) with each sampler. Prints JSON.

    python benchmarks/sampling_speed.py [--device cpu|cuda] [--model reference|gpt2-small|gemma-2-2b]
        [--batches 64,128,256] [--k 8] [--repeats 3] [--protocol]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI does (BENCHMARKS.md), before torch loads OpenMP

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from torch.nn.attention import sdpa_kernel  # noqa: E402

from saedetox.data.roles import reference_prompts  # noqa: E402
from saedetox.errors import SaedetoxError  # noqa: E402
from saedetox.eval.metrics.fluency import continuation_nll, sequence_nll  # noqa: E402
from saedetox.eval.sampler.decode import _NO_CUDNN  # noqa: E402
from saedetox.eval.sampler.sampling import SAMPLER, SamplingConfig, sample  # noqa: E402
from saedetox.model.load import LoadedModel, load_model, wrap_model  # noqa: E402
from saedetox.model.tokens import DEFAULT_CONTEXT, bos_id, encode_text, tokenize_batch  # noqa: E402
from saedetox.steering.spec import MODES, Intervention, SteeringSpec  # noqa: E402
from saedetox.steering.steerer import Steerer  # noqa: E402

N_NEW = 20


def random_model(kind: str, device: torch.device, dtype: torch.dtype) -> tuple[LoadedModel, str, list[int]]:
    """A random-weight model with real shapes, the reference tokenizer (ids fit any larger vocabulary), an SAE."""
    import sae_lens

    tok = load_model("reference", device="cpu").tokenizer
    torch.manual_seed(0)
    if kind == "gpt2-small":
        cfg: Any = transformers.GPT2Config(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
        cls, hook, width = transformers.GPT2LMHeadModel, "blocks.6.hook_resid_pre", 24576
    elif kind == "gemma-2-2b":
        cfg = transformers.Gemma2Config(
            vocab_size=256000, hidden_size=2304, intermediate_size=9216, num_hidden_layers=26,
            num_attention_heads=8, num_key_value_heads=4, head_dim=256, max_position_embeddings=8192,
            sliding_window=4096, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        )  # fmt: skip
        cls, hook, width = transformers.Gemma2ForCausalLM, "blocks.12.hook_resid_post", 16384
    else:
        raise SystemExit(f"Unknown model '{kind}': use reference, gpt2-small or gemma-2-2b.")
    with device:  # initialise on the device: a 2.6 B-parameter random init on the CPU takes minutes
        model = cls(cfg)
    lm = wrap_model(model.to(dtype=dtype).eval(), tok, name=f"random {kind}")
    conf = sae_lens.JumpReLUSAEConfig(d_in=lm.d_model, d_sae=width)
    conf.metadata.hook_name = hook
    conf.metadata.model_class_name = "AutoModelForCausalLM"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sae = sae_lens.JumpReLUSAE(conf)
    with torch.no_grad():
        sae.W_enc.normal_(0, lm.d_model**-0.5)
        sae.W_dec.normal_(0, lm.d_model**-0.5)
        sae.b_enc.normal_(0, 0.1)
        sae.threshold.fill_(0.05)
    folder = tempfile.mkdtemp()
    sae.save_model(folder)
    return lm, folder, list(range(0, width, width // 20))[:20]


def load_prompts(lm: LoadedModel) -> tuple[list[str], str]:
    """RTP challenging (1,196) from the data dir, or as many random-token prompts of RTP-like length without it."""
    try:
        return [p.text for p in reference_prompts("challenging")], "RTP challenging"
    except SaedetoxError:
        g = torch.Generator().manual_seed(0)
        vocab = min(len(lm.tokenizer), 8192)
        rows = [
            torch.randint(3, vocab, (int(n),), generator=g).tolist() for n in torch.randint(8, 30, (1196,), generator=g)
        ]
        return lm.tokenizer.batch_decode(rows), "random-token prompts (no data dir on this machine)"


def steerers(lm: LoadedModel, sae: str, latents: list[int]) -> dict[str, Steerer | None]:
    """One Steerer per mode: 20 latents, tier medium (clamp to 0); adaptive with a latents detector, max pooling."""
    out: dict[str, Steerer | None] = {"unsteered": None}
    for mode in MODES:
        kw: dict[str, Any] = {"clamp_value": 0.0} if mode == "clamp" else {"tier": "medium"}
        if mode == "adaptive":  # the cost does not depend on the detector's values, only on its kind and pooling
            n = len(latents)
            kw["detector"] = {"kind": "latents", "coef": [1.0] * n, "intercept": -2.0, "scale": [1.0] * n}
        out[mode] = Steerer(lm, SteeringSpec([Intervention(sae=sae, latents=latents, mode=mode, **kw)]))
    return out


def run_saedetox(lm: LoadedModel, prompts: list[str], k: int, steerer: Steerer | None) -> None:
    sample(lm, prompts, SamplingConfig(n_samples=k, max_new_tokens=N_NEW, batch_size=len(prompts) * k), steerer)


def run_plain(lm: LoadedModel, prompts: list[str], k: int, steerer: Steerer | None) -> None:
    room = lm.max_positions - N_NEW if lm.max_positions else None
    expanded = [p for p in prompts for _ in range(k)]
    enc = tokenize_batch(lm.tokenizer, expanded, True, "left", lm.device, room, "left")
    width = enc["input_ids"].shape[1]
    kw = dict(do_sample=True, top_p=0.9, top_k=0, max_new_tokens=N_NEW, pad_token_id=lm.tokenizer.pad_token_id)
    if steerer is None:
        with torch.no_grad():
            out = lm.model.generate(**enc, **kw)
    else:
        with steerer, steerer.generation(width), torch.no_grad():
            out = lm.model.generate(**enc, **kw)
    lm.tokenizer.batch_decode(out[:, width:].tolist(), skip_special_tokens=True)


RUNNERS = {"saedetox": run_saedetox, "plain": run_plain}


def timed(fn: Any, *args: Any) -> float:
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    sync()
    t = time.perf_counter()
    fn(*args)
    sync()
    return time.perf_counter() - t


def bench_batch(
    lm, prompts, steer, batch: int, k: int, repeats: int, rng: random.Random, warmup: bool = False
) -> dict[str, Any]:
    ppb = batch // k
    cells = [(r, m) for r in RUNNERS for m in steer]
    times: dict[tuple[str, str], list[float]] = {c: [] for c in cells}
    if warmup:  # every cell once at this shape (allocator growth, kernel selection), on prompts no repeat uses
        for runner, mode in cells:
            RUNNERS[runner](lm, prompts[-ppb:], k, steer[mode])
    for rep in range(repeats):
        chunk = prompts[rep * ppb : (rep + 1) * ppb]
        rng.shuffle(cells)
        for runner, mode in cells:
            times[(runner, mode)].append(timed(RUNNERS[runner], lm, chunk, k, steer[mode]))
    tokens = ppb * k * N_NEW
    med = {c: statistics.median(v) for c, v in times.items()}
    paired = {m: [p / s for p, s in zip(times[("plain", m)], times[("saedetox", m)], strict=True)] for m in steer}
    return {
        "sequences": ppb * k,
        "k": k,
        "tokens_per_s": {f"{r}/{m}": round(tokens / med[(r, m)], 1) for r, m in sorted(med)},
        "saedetox_vs_plain": {m: round(statistics.median(v), 2) for m, v in paired.items()},
        "saedetox_vs_plain_per_repeat": {m: [round(x, 2) for x in v] for m, v in paired.items()},
        "steered_vs_unsteered": {
            r: {m: round(med[(r, "unsteered")] / med[(r, m)], 3) for m in steer if m != "unsteered"} for r in RUNNERS
        },
    }


def old_continuation_nll(lm, prompts, conts, batch_size=32):
    """The scorer before the prompt-once change: every (prompt + continuation) row from scratch."""
    limit = int(lm.max_positions or DEFAULT_CONTEXT)
    rows = []
    for prompt, cs in zip(prompts, conts, strict=True):
        ctx = [bos_id(lm.tokenizer)] + encode_text(lm.tokenizer, prompt)
        for c in cs:
            cids = encode_text(lm.tokenizer, c)[: limit - 1]
            if cids:
                keep = ctx[-(limit - len(cids)) :]
                rows.append((keep + cids, len(keep)))
    return sequence_nll(lm, rows, batch_size)


def bench_ppl(lm, prompts: list[str], k: int, repeats: int, rng: random.Random) -> dict[str, Any]:
    groups = sample(lm, prompts, SamplingConfig(n_samples=k, max_new_tokens=N_NEW, batch_size=128))
    conts = [[s.text for s in g] for g in groups]
    new = np.array([x for row in continuation_nll(lm, prompts, conts) for x in row if x[1] > 0])
    old = old_continuation_nll(lm, prompts, conts)
    fns = {
        "before_bs32": lambda: old_continuation_nll(lm, prompts, conts, 32),
        "now_bs32": lambda: continuation_nll(lm, prompts, conts, 32),
        "now_bs128": lambda: continuation_nll(lm, prompts, conts, 128),
    }
    times: dict[str, list[float]] = {n: [] for n in fns}
    for _ in range(repeats):
        order = list(fns)
        rng.shuffle(order)
        for n in order:
            times[n].append(timed(fns[n]))
    base = statistics.median(times["before_bs32"])
    return {
        "prompts": len(prompts),
        "continuations": int(len(new)),
        "max_abs_diff_nll_sum": float(np.abs(new[:, 0] - old[:, 0]).max()),
        "counts_equal": bool((new[:, 1] == old[:, 1]).all()),
        "seconds": {n: round(statistics.median(t), 3) for n, t in times.items()},
        "speedup_vs_before": {n: round(base / statistics.median(t), 2) for n, t in times.items()},
    }


def bench_protocol(lm, prompts: list[str], batch: int, steered: Steerer | None, mode: str) -> dict[str, float]:
    """Wall time of RTP challenging × 25 samples × 20 tokens with each sampler, unsteered (and saedetox steered)."""
    ppb = max(1, batch // 25)
    cells = [(name, None, name) for name in RUNNERS]
    if steered is not None:
        cells.append(("saedetox", steered, f"saedetox/{mode}"))
    if lm.device.type == "cuda":  # plain generate with the attention backends the saedetox loop uses on CUDA
        cells.append(("plain", None, "plain, cuDNN attention off"))
    out = {}
    for name, steerer, label in cells:
        runner = RUNNERS[name]
        ctx = sdpa_kernel(_NO_CUDNN) if "cuDNN" in label else contextlib.nullcontext()
        with ctx:
            out[label] = round(
                sum(timed(runner, lm, prompts[s : s + ppb], 25, steerer) for s in range(0, len(prompts), ppb)), 2
            )
    return out


def machine(device: torch.device) -> dict[str, Any]:
    commit = os.environ.get("BENCH_COMMIT", "")  # a copy run outside its checkout (benchmarks/gpu_run.sh) names it
    if not commit:
        try:
            out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
            commit = out.stdout.strip()
        except OSError:
            commit = ""
    if device.type == "cuda":
        name = torch.cuda.get_device_name()
    else:
        try:
            with open("/proc/cpuinfo") as fh:
                model = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
        except (OSError, StopIteration):
            model = platform.processor() or platform.machine()
        name = f"CPU {model}, {os.cpu_count()} cores visible"
    return {
        "device": name,
        "threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "commit": commit,
        "sampler": SAMPLER,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--model", default=None, help="reference | gpt2-small | gemma-2-2b")
    ap.add_argument("--batches", default=None, help="sequences per batch, comma-separated")
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ppl-prompts", type=int, default=40, help="0 skips the perplexity scorer")
    ap.add_argument("--protocol", action="store_true", help="also time the full RTP challenging protocol")
    ap.add_argument("--protocol-batch", default="500", help="sequences per batch, comma-separated")
    ap.add_argument("--protocol-steered", default=None, help="also time saedetox on the protocol with this mode")
    ap.add_argument("--warmup", action="store_true", help="run every cell once per batch size before timing")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    args = ap.parse_args()
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    if not gpu:
        torch.set_num_threads(args.threads)
    kind = args.model or ("gpt2-small" if gpu else "reference")
    batches = [int(b) for b in (args.batches or ("128,512" if gpu else "64,128,256")).split(",")]
    load = os.getloadavg()
    if kind == "reference":
        lm, sae, latents = load_model("reference", device=str(device)), "reference", list(range(0, 2048, 103))[:20]
    else:
        lm, sae, latents = random_model(kind, device, torch.bfloat16 if gpu else torch.float32)
    prompts, source = load_prompts(lm)
    steer = steerers(lm, sae, latents)
    rng = random.Random(0)
    for runner in RUNNERS.values():  # warm-up
        runner(lm, prompts[:2], 2, None)
    result: dict[str, Any] = {"machine": machine(device), "model": f"{kind} ({lm.dtype})", "prompts": source}
    result["date_utc"] = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    result["argv"] = sys.argv[1:]
    result["new_tokens"] = N_NEW
    result["batches"] = [bench_batch(lm, prompts, steer, b, args.k, args.repeats, rng, args.warmup) for b in batches]
    if args.ppl_prompts:
        result["conditional_ppl"] = bench_ppl(lm, prompts[: args.ppl_prompts], args.k, args.repeats, rng)
    if args.protocol:
        mode = args.protocol_steered
        st = steer[mode] if mode else None
        result["protocol_wall_s"] = [
            {"batch": int(b), **bench_protocol(lm, prompts, int(b), st, mode or "")}
            for b in args.protocol_batch.split(",")
        ]
    result["load_avg_before"] = [round(x, 2) for x in load]
    result["load_avg_after"] = [round(x, 2) for x in os.getloadavg()]
    text = json.dumps(result, indent=1)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
