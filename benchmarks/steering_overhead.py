"""Throughput of steered vs unsteered ``generate``, per steering mode, as ratios measured in one run.

CPU: a random-init GPT-2 the size of the reference world (d 256, 6 layers) at batch 32.
GPU (when available): a random-init GPT-2-small-size model (d 768, 12 layers) at batch 128.
A random JumpReLU SAE (16× width) at the middle layer supplies 10 latents. Modes are timed in
interleaved rounds (unsteered, constant, conditional, token, clamp, repeat) and the median
per mode is used, so drift on a noisy machine hits every mode alike. Prints JSON.

    python benchmarks/steering_overhead.py [--device cpu|cuda] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
import warnings
from contextlib import nullcontext

import sae_lens
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from saedetox.model.load import wrap_model
from saedetox.steering.spec import MODES, Intervention, SteeringSpec
from saedetox.steering.steerer import Steerer


def build(device: torch.device, d: int, layers: int, vocab: int = 8192):
    vocab_map = {f"w{i}": i for i in range(vocab)}
    tk = Tokenizer(models.WordLevel(vocab_map, unk_token="w0"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="w0", eos_token="w1", pad_token="w0", unk_token="w0")
    torch.manual_seed(0)
    cfg = GPT2Config(
        vocab_size=vocab,
        n_positions=256,
        n_embd=d,
        n_layer=layers,
        n_head=max(4, d // 64),
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=0,
    )
    lm = wrap_model(GPT2LMHeadModel(cfg).to(device).eval(), tok, "bench-gpt2")
    hook = f"blocks.{layers // 2}.hook_resid_pre"
    conf = sae_lens.JumpReLUSAEConfig(d_in=d, d_sae=16 * d)
    conf.metadata.hook_name = hook
    conf.metadata.model_class_name = "AutoModelForCausalLM"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sae = sae_lens.JumpReLUSAE(conf)
    with torch.no_grad():
        sae.W_enc.normal_(0, d**-0.5)
        sae.W_dec.normal_(0, d**-0.5)
        sae.b_enc.normal_(0, 0.1)
        sae.threshold.fill_(0.05)
    folder = tempfile.mkdtemp()
    sae.save_model(folder)
    return lm, folder


def time_generate(lm, ids, mask, new_tokens: int, steerer) -> float:
    ctx = steerer if steerer is not None else nullcontext()
    if lm.device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    with ctx, torch.no_grad():
        lm.model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=True,
            top_p=0.9,
            top_k=0,
            pad_token_id=0,
        )
    if lm.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--new-tokens", type=int, default=20)
    ap.add_argument("--prompt-len", type=int, default=24)
    args = ap.parse_args()

    device = torch.device(args.device)
    d, layers, batch = (768, 12, 128) if device.type == "cuda" else (256, 6, 32)
    if device.type == "cpu":
        torch.set_num_threads(torch.get_num_threads())
    lm, sae_dir = build(device, d, layers)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(2, 8192, (batch, args.prompt_len), generator=g).to(device)
    mask = torch.ones_like(ids)
    mask[: batch // 4, : args.prompt_len // 3] = 0  # some left padding, as in real batches
    steerers = {"unsteered": None}
    for mode in MODES:
        spec = SteeringSpec([Intervention(sae=sae_dir, latents=list(range(10)), mode=mode, tier="medium")])
        steerers[mode] = Steerer(lm, spec)
    for s in steerers.values():  # warm-up
        time_generate(lm, ids, mask, 4, s)
    times: dict[str, list[float]] = {k: [] for k in steerers}
    for _ in range(args.rounds):
        for name, s in steerers.items():
            times[name].append(time_generate(lm, ids, mask, args.new_tokens, s))
    med = {k: statistics.median(v) for k, v in times.items()}
    tokens = batch * args.new_tokens
    out = {
        "device": torch.cuda.get_device_name()
        if device.type == "cuda"
        else f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
        "model": f"random GPT-2 d={d} layers={layers}",
        "sae": f"JumpReLU {16 * d} latents, 10 steered, hook blocks.{layers // 2}.hook_resid_pre",
        "batch": batch,
        "new_tokens": args.new_tokens,
        "rounds": args.rounds,
        "tokens_per_s": {k: round(tokens / v, 1) for k, v in med.items()},
        "ratio_vs_unsteered": {k: round(med["unsteered"] / v, 3) for k, v in med.items() if k != "unsteered"},
        "torch": torch.__version__,
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
