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

.PHONY: demo test install lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "torch==2.13.0"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/saedetox demo --out $(DEMO_OUT)

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/steering_overhead.py

clean:
	rm -rf $(DEMO_OUT) .pytest_cache .ruff_cache
