"""Does ``OMP_WAIT_POLICY=PASSIVE`` cost anything? The same sampling workload under each OpenMP wait policy.

OpenMP reads the policy when torch loads its runtime, so each measurement is a fresh worker
process with the policy in its environment (``default`` = unset: the runtime's own default,
which spins before sleeping). Workers run in a shuffled order inside every round, so a change
of load on the machine hits every policy alike; the load average is recorded before and after.
Workload: ``saedetox.eval.sampler.sampling.sample`` on the reference model, one batch of
``batch`` sequences (``k`` samples per RTP challenging prompt, 20 new tokens), plus a plain
forward of the same batch. Prints JSON.

    python benchmarks/omp_wait_policy.py [--threads 2] [--rounds 4] [--batch 128] [--k 8]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time

POLICIES = ("default", "PASSIVE", "ACTIVE")


def worker(threads: int, batch: int, k: int, calls: int) -> None:
    import torch  # deferred: the parent must not load OpenMP, the worker's environment decides its policy

    from saedetox.data.roles import reference_prompts
    from saedetox.eval.sampler.sampling import SamplingConfig, sample
    from saedetox.model.load import load_model
    from saedetox.model.tokens import tokenize_batch

    torch.set_num_threads(threads)
    lm = load_model("reference", device="cpu")
    prompts = [p.text for p in reference_prompts("challenging")][: batch // k]
    cfg = SamplingConfig(n_samples=k, max_new_tokens=20, batch_size=batch, seed=0)
    sample(lm, prompts[:2], SamplingConfig(n_samples=2, max_new_tokens=4))  # warm-up
    enc = tokenize_batch(lm.tokenizer, [p for p in prompts for _ in range(k)])
    out: dict[str, list[float]] = {"sample_s": [], "forward_s": []}
    for _ in range(calls):
        t = time.perf_counter()
        sample(lm, prompts, cfg)
        out["sample_s"].append(time.perf_counter() - t)
        t = time.perf_counter()
        with torch.inference_mode():
            lm.model(**enc)
        out["forward_s"].append(time.perf_counter() - t)
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--calls", type=int, default=2, help="timed calls per worker")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.threads, args.batch, args.k, args.calls)
        return
    load_before = os.getloadavg()
    times: dict[str, dict[str, list[float]]] = {p: {"sample_s": [], "forward_s": []} for p in POLICIES}
    rng = random.Random(0)
    for _ in range(args.rounds):
        order = list(POLICIES)
        rng.shuffle(order)
        for policy in order:
            env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
            if policy != "default":
                env["OMP_WAIT_POLICY"] = policy
            cmd = [
                sys.executable,
                __file__,
                "--worker",
                "1",
                "--threads",
                str(args.threads),
                "--calls",
                str(args.calls),
            ]
            cmd += ["--batch", str(args.batch), "--k", str(args.k)]
            res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            got = json.loads(res.stdout.strip().splitlines()[-1])
            for key, vals in got.items():
                times[policy][key].extend(vals)
    tokens = args.batch * 20
    summary = {
        p: {
            "sample_tok_per_s": round(tokens / statistics.median(t["sample_s"]), 1),
            "forward_ms": round(1000 * statistics.median(t["forward_s"]), 1),
            "sample_s_all": [round(x, 3) for x in t["sample_s"]],
        }
        for p, t in times.items()
    }
    base = statistics.median(times["default"]["sample_s"])
    print(
        json.dumps(
            {
                "workload": f"sample(), reference model, batch {args.batch} (k={args.k}), 20 new tokens",
                "threads": args.threads,
                "rounds": args.rounds,
                "load_avg_before": [round(x, 2) for x in load_before],
                "load_avg_after": [round(x, 2) for x in os.getloadavg()],
                "policies": summary,
                "speed_vs_default": {p: round(base / statistics.median(t["sample_s"]), 3) for p, t in times.items()},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
