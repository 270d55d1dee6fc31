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

# The built-in benchmark: the two shipped demo models on the synthetic test split (generated on first use).
bench: setup
	$(BIN)/vsslrt bench

# The layout's import rules first (seconds), then the CPU suite.
test: setup
	$(BIN)/python scripts/lint_layout.py
	$(BIN)/python -m pytest -m "not gpu and not trt and not cupy" tests

# Speed and memory targets, reported as ratios against a baseline measured in the same run.
benchmarks: setup
	$(BIN)/python -m pytest benchmarks -o python_files='bench_*.py' --benchmark-only
	$(BIN)/python benchmarks/bench_frontends.py
	$(BIN)/python benchmarks/bench_engine.py
	$(BIN)/python benchmarks/bench_pipeline.py --n 64
	$(BIN)/python benchmarks/bench_pipeline.py --n 64 --noise-bank 16

test-gpu:
	bash scripts/gpu_check.sh

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .benchmarks
