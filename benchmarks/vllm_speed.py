"""The vLLM backend vs saedetox's HF sampler vs plain ``transformers`` generate, side by side in one run.

Same model, prompts, batch and sampling settings (nucleus p = 0.9, 20 new tokens, EOS ignored so
every sequence is as long in each backend), unsteered and in every steering mode (20 latents,
tier medium, clamp to 0, adaptive with a latents detector). Each repeat runs every (backend, mode)
cell once in a shuffled order on the next chunk of prompts; tok/s = sequences × new tokens / wall,
median over repeats; ratios are medians of per-repeat paired ratios. vLLM runs in eager mode with
one levels file holding every mode (a request names its mode's level). Prints JSON.

Run it where vLLM is installed (``.venv-vllm/bin/python benchmarks/vllm_speed.py``, after
``make test`` has built that environment):

    python benchmarks/vllm_speed.py [--model reference|gpt2-small|gemma-2-2b] [--device cpu|cuda]
        [--batch 64] [--repeats 3] [--protocol]

``--protocol`` adds the wall time of the full RTP challenging protocol (1,196 prompts × 25 samples ×
20 tokens) through vLLM, unsteered and in constant mode.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402
from sampling_speed import N_NEW, load_prompts, machine, random_model, run_plain, run_saedetox, steerers  # noqa: E402

from saedetox.model.load import load_model, reference_model_dir  # noqa: E402
from saedetox.model.tokens import bos_id  # noqa: E402
from saedetox.serving.engine import SteeredLLM, build_levels  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="reference")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--protocol", action="store_true")
    ap.add_argument("--out", default=None, help="also write the JSON here (vLLM logs to stdout as well)")
    args = ap.parse_args()
    device = torch.device(args.device)
    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    tmp = Path(tempfile.mkdtemp())
    if device.type == "cpu":
        torch.set_num_threads(2)
    if args.model == "reference":
        lm = load_model("reference", dtype="float32", device=str(device))
        sae, latents = "reference", list(range(0, 2048, 103))[:20]  # as benchmarks/sampling_speed.py
        folder = str(reference_model_dir())
    else:
        lm, sae, latents = random_model(args.model, device, dtype)
        folder = str(tmp / "model")
        lm.model.save_pretrained(folder)
        lm.tokenizer.save_pretrained(folder)
    prompts, source = load_prompts(lm)
    steer = steerers(lm, sae, latents)
    levels_path = build_levels(lm, {m: (None if s is None else s.spec) for m, s in steer.items()}, tmp / "levels.pt")
    t0 = time.time()
    llm = SteeredLLM(
        folder,
        levels_path,
        dtype=str(dtype).replace("torch.", ""),
        max_model_len=256 if args.model == "reference" else 1024,
        gpu_memory_utilization=0.1 if device.type == "cpu" else 0.85,
        seed=0,
    )
    engine_start = time.time() - t0
    bos = bos_id(lm.tokenizer)
    rows: dict[tuple[str, str], list[float]] = {}
    chunk = 0
    cells = [(b, m) for b in ("vllm", "saedetox", "plain") for m in steer]
    for _ in range(args.repeats):
        random.Random(chunk).shuffle(cells)
        batch = prompts[(chunk * args.batch) % len(prompts) :][: args.batch]
        chunk += 1
        ids = [([bos] if bos is not None else []) + lm.tokenizer(p).input_ids for p in batch]
        for backend, mode in cells:
            t = time.time()
            if backend == "vllm":
                llm.generate(
                    ids,
                    mode,
                    seeds=list(range(len(ids))),
                    temperature=1.0,
                    top_p=0.9,
                    max_tokens=N_NEW,
                    ignore_eos=True,
                )
            elif backend == "saedetox":
                run_saedetox(lm, batch, 1, steer[mode])
            else:
                run_plain(lm, batch, 1, steer[mode])
            rows.setdefault((backend, mode), []).append(len(batch) * N_NEW / (time.time() - t))
    out: dict[str, Any] = {
        "machine": machine(device),
        "model": args.model,
        "prompts": source,
        "batch": args.batch,
        "new_tokens": N_NEW,
        "repeats": args.repeats,
        "engine_start_s": round(engine_start, 1),
        "tok_per_s": {f"{b}/{m}": round(statistics.median(v), 1) for (b, m), v in sorted(rows.items())},
    }
    ratios = {}
    for m in steer:
        v, s, p = rows[("vllm", m)], rows[("saedetox", m)], rows[("plain", m)]
        ratios[m] = {
            "vllm/saedetox": round(statistics.median(a / b for a, b in zip(v, s, strict=True)), 2),
            "vllm/plain": round(statistics.median(a / b for a, b in zip(v, p, strict=True)), 2),
            "vllm steered/unsteered": round(
                statistics.median(a / b for a, b in zip(v, rows[("vllm", "unsteered")], strict=True)), 2
            ),
        }
    out["ratios"] = ratios
    if args.protocol:
        ids = [([bos] if bos is not None else []) + lm.tokenizer(p).input_ids for p in prompts]
        proto = {}
        for mode in ("unsteered", "constant"):
            t = time.time()
            reps = [p for p in ids for _ in range(25)]
            llm.generate(
                reps, mode, seeds=list(range(len(reps))), temperature=1.0, top_p=0.9, max_tokens=N_NEW, ignore_eos=True
            )
            proto[mode] = round(time.time() - t, 1)
        out["protocol_seconds"] = {"prompts": len(ids), "samples": 25, "tokens": N_NEW, **proto}
    llm.close()
    text = json.dumps(out, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
