"""Where one sampled batch spends its time on an accelerator: host (Python, launches) vs device (kernels).

For each cell (saedetox sampler or plain ``generate``, unsteered or one steering mode) one batch
is run once to warm up and once under ``torch.profiler``. Reported per cell: wall seconds, the
number of kernel launches, the summed device time of the kernels (busy GPU), the host time the
profiler saw, and the operators with the most self host time. When wall ≫ device time, the loop
is bound by the host (Python and launches), and fewer launches per step is what helps.

    python benchmarks/profile_decode.py [--model gpt2-small] [--batch 128] [--k 8] [--modes unsteered,constant]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sampling_speed import RUNNERS, load_prompts, random_model, steerers  # noqa: E402

LAUNCH_NAMES = ("cudaLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernel", "cuLaunchKernelEx")


def profile_cell(fn: Any, top: int) -> dict[str, Any]:
    fn()  # warm-up
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        wall = time.perf_counter() - t
    events = prof.key_averages()
    launches = sum(e.count for e in events if e.key in LAUNCH_NAMES)
    device_us = sum(e.self_device_time_total for e in events if e.device_type == torch.autograd.DeviceType.CUDA)
    syncs = sum(e.count for e in events if "Synchronize" in e.key or e.key == "aten::item")
    ops = sorted((e for e in events if e.key.startswith("aten::")), key=lambda e: -e.self_cpu_time_total)[:top]
    return {
        "wall_s": round(wall, 4),
        "kernel_launches": int(launches),
        "device_busy_s": round(device_us / 1e6, 4),
        "sync_like_calls": int(syncs),
        "top_self_cpu_ops": [
            {"op": e.key, "calls": e.count, "self_cpu_ms": round(e.self_cpu_time_total / 1e3, 2)} for e in ops
        ],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="gpt2-small")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--modes", default="unsteered,constant,conditional,token,clamp,adaptive")
    ap.add_argument("--runners", default="saedetox,plain")
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    device = torch.device("cuda")
    lm, sae, latents = random_model(args.model, device, torch.bfloat16)
    prompts, _ = load_prompts(lm)
    steer = steerers(lm, sae, latents)
    chunk = prompts[: args.batch // args.k]
    result: dict[str, Any] = {
        "model": args.model,
        "batch": args.batch,
        "k": args.k,
        "device": torch.cuda.get_device_name(),
    }
    cells = {}
    for runner in args.runners.split(","):
        for mode in args.modes.split(","):
            cell = profile_cell(lambda r=runner, m=mode: RUNNERS[r](lm, chunk, args.k, steer[m]), args.top)
            cells[f"{runner}/{mode}"] = cell
            print(
                f"{runner}/{mode}: wall {cell['wall_s']:.4f} s, device busy {cell['device_busy_s']:.4f} s, "
                f"{cell['kernel_launches']} launches, {cell['sync_like_calls']} sync-like calls",
                flush=True,
            )
    result["cells"] = cells
    for name in ("saedetox/unsteered", "saedetox/constant", "saedetox/adaptive"):
        if name in cells:
            print(name, json.dumps(cells[name]["top_self_cpu_ops"][:8]))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
