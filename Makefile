# Two entry points for a fresh machine: `make bench` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.vsslrt-installed

.PHONY: setup bench test test-gpu benchmarks clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip setuptools wheel
	# torch/torchvision pinned to the releases this project is tested with (export/ only).
	$(BIN)/python -m pip install torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install -e '.[dev]'
	touch $(STAMP)

bench: setup
	$(BIN)/vsslrt bench

test: setup
	$(BIN)/python -m pytest -m "not gpu and not trt and not cupy" tests

benchmarks: setup
	$(BIN)/python -m pytest benchmarks --benchmark-only

test-gpu:
	bash scripts/gpu_check.sh

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .benchmarks
