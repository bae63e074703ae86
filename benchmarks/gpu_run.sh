#!/bin/bash
# The GPU measurements of BENCHMARKS.md, as run on one NVIDIA H100 80 GB.
#
# The GPU machine has torch 2.11 (cu130), Python 3.12 and transformers 5.17, no sae_lens and no
# network, and it receives only a copy of one checkout. Prepare, on a machine with network:
#   1. a folder F inside that checkout, ignored by git (e.g. .work/wtgpu), holding a copy
#      of src/ (the assets may be left out: they are copied from the checkout there), benchmarks/,
#      and .work/data/rtp_decodingtrust/toxic.jsonl (the RTP challenging prompts);
#   2. F/.work/site312.tgz: `pip install --no-deps --target site312 --python-version 3.12
#      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --only-binary=:all:` of
#      sae-lens 6.54.12, transformer-lens 3.9.0, transformers 5.24.0, datasets 5.2.0, dill, multiprocess,
#      pydantic (+ pydantic-core, annotated-types, typing-inspection), simple-parsing, docstring-parser,
#      better-abc, wandb 0.31.0 (its bin/ removed: only wandb.init needs it), platformdirs,
#      opentelemetry-api, tenacity, python-dotenv, fancy-einsum, beartype, typeguard, babe, cwevals
#      (what `import sae_lens` needs beyond the GPU machine's packages), tarred (18 MB);
# then, with F copied to the GPU machine:  cd F && BENCH_COMMIT=<commit> bash benchmarks/gpu_run.sh TAG
# Outputs land in $OUT: gpu_gpt2_TAG.json, gpu_gemma_TAG.json, profile_gpt2_TAG.json (+ logs).
# SKIP_PROFILE=1 / SKIP_GEMMA=1 leave those parts out. About 8 minutes of GPU time in all.
# The vLLM backend (benchmarks/vllm_speed.py) runs too where `import vllm` works: prepare
#   3. F/.work/vllm-wheels: `pip download vllm` for Python 3.12 and the GPU machine's torch (no
#      network there), installed below with `pip install --no-index --find-links`; SKIP_VLLM=1
#      leaves it out. Outputs: vllm_gpt2_TAG.json (batch 512, the full RTP challenging protocol),
#      vllm_gemma_TAG.json.
TAG=${1:-run}
[ -d src/saedetox/assets ] || cp -r ../../src/saedetox/assets src/saedetox/ || exit 1
tar xzf .work/site312.tgz -C /tmp || exit 1
export PYTHONPATH=/tmp/site312:$PWD/src SAEDETOX_DATA=$PWD/.work/data HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
export TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv
python3 -c 'import sys,torch,transformers,sae_lens;print(sys.version.split()[0],torch.__version__,transformers.__version__,sae_lens.__version__, torch.cuda.get_device_name())' || exit 1
S=$(date +%s)
if [ -z "$SKIP_PROFILE" ]; then
  python3 benchmarks/profile_decode.py --model gpt2-small --batch 128 --out "$OUT/profile_gpt2_$TAG.json" 2>&1 | grep -v Warning
  echo "profile done $(( $(date +%s) - S )) s"
fi
python3 benchmarks/sampling_speed.py --device cuda --model gpt2-small --batches 128,512 --k 8 --repeats 5 --warmup \
  --ppl-prompts 0 --protocol --protocol-batch 500,1000 --protocol-steered constant \
  --out "$OUT/gpu_gpt2_$TAG.json" > "$OUT/gpu_gpt2_$TAG.log" 2>&1
echo "gpt2 done $(( $(date +%s) - S )) s"
if [ -z "$SKIP_GEMMA" ]; then
  python3 benchmarks/sampling_speed.py --device cuda --model gemma-2-2b --batches 128,512 --k 8 --repeats 3 --warmup \
    --ppl-prompts 0 --out "$OUT/gpu_gemma_$TAG.json" > "$OUT/gpu_gemma_$TAG.log" 2>&1
  echo "gemma done $(( $(date +%s) - S )) s"
fi
if [ -z "$SKIP_VLLM" ]; then
  python3 -c "import vllm" 2>/dev/null || { [ -d .work/vllm-wheels ] && \
    pip install -q --no-index --find-links .work/vllm-wheels vllm; }
  if python3 -c "import vllm" 2>/dev/null; then
    python3 benchmarks/vllm_speed.py --device cuda --model gpt2-small --batch 512 --repeats 5 --protocol \
      --out "$OUT/vllm_gpt2_$TAG.json" > "$OUT/vllm_gpt2_$TAG.log" 2>&1
    [ -n "$SKIP_GEMMA" ] || python3 benchmarks/vllm_speed.py --device cuda --model gemma-2-2b --batch 512 \
      --repeats 3 --out "$OUT/vllm_gemma_$TAG.json" > "$OUT/vllm_gemma_$TAG.log" 2>&1
    echo "vllm done $(( $(date +%s) - S )) s"
  else
    echo "vLLM is not installed on this machine: the vLLM backend was not measured"
  fi
fi
for f in "$OUT"/gpu_*_"$TAG".json; do
  python3 -c "import json,sys;r=json.load(open(sys.argv[1]));[print(r['model'],b['sequences'],b['steered_vs_unsteered']['saedetox'],b['saedetox_vs_plain']) for b in r['batches']];print(r.get('protocol_wall_s'))" "$f"
done
