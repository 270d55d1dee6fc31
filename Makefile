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

# The built-in benchmark needs the two demo models in vsslrt/assets/demo; until they ship, the
# main job computes every metric of the protocol on the bundled example heatmaps.
bench: setup
	@if [ -f vsslrt/assets/demo/demo-pos/manifest.json ] && [ -f vsslrt/assets/demo/demo-san/manifest.json ]; then \
		$(BIN)/vsslrt bench; \
	else \
		echo "The demo models are not shipped yet (vsslrt/assets/demo): computing every metric on the bundled example."; \
		$(BIN)/vsslrt metrics examples/example_maps.npz --thresholds max=0.6041,max10=0.6645,maxq3=0.6382; \
	fi

test: setup
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
