"""Shared fixtures of the benchmark suites (run with `pytest benchmarks --benchmark-only`).

Heavy data is built lazily inside session fixtures, so collecting another suite costs nothing.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]

# Evaluator benchmark size: N samples x 4 conditions of 224x224 float32 maps (about 0.8 MB per
# sample). VSSLRT_BENCH_EVAL_N shrinks it for a quick run.
EVAL_SAMPLES = int(os.environ.get("VSSLRT_BENCH_EVAL_N", "2000"))
EVAL_THRESHOLDS = {"max": 0.6041, "max10": 0.6645, "maxq3": 0.6382}  # EZ-VSL's reference constants


def make_eval_maps(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Raw 224x224 maps on a (cos + 1) / 2 scale and one GT box per sample (about 1 in 50 empty)."""
    rng = np.random.default_rng(seed)
    maps = {c: rng.random((n, 224, 224), dtype=np.float32) for c in ("pos", "silence", "noise", "offscreen")}
    size = rng.integers(16, 160, size=(n, 2))
    corner = rng.integers(0, 224 - size + 1)
    rows = np.arange(224)
    inside_y = (rows >= corner[:, :1]) & (rows < corner[:, :1] + size[:, :1])
    inside_x = (rows >= corner[:, 1:]) & (rows < corner[:, 1:] + size[:, 1:])
    gt = inside_y[:, :, None] & inside_x[:, None, :]
    gt[::50] = False  # the empty-GT policies are part of what is measured
    maps["gt"] = gt
    maps["group"] = np.arange(n, dtype=np.int64) // 2
    return maps


@pytest.fixture(scope="session")
def eval_maps() -> dict[str, np.ndarray]:
    return make_eval_maps(EVAL_SAMPLES)


@pytest.fixture(scope="session")
def eval_thresholds() -> dict[str, float]:
    return dict(EVAL_THRESHOLDS)


@pytest.fixture(scope="session")
def loop_oracle():
    """The per-sample loop reference of tests/eval/oracle.py (skips the benchmark when absent)."""
    path = REPO / "tests" / "eval" / "oracle.py"
    if not path.is_file():
        pytest.skip("tests/eval/oracle.py (the per-sample loop reference) is not present")
    name = "vsslrt_bench_eval_oracle"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module.oracle_evaluate


def _cupy_reason() -> str | None:
    if importlib.util.find_spec("cupy") is None:
        return "cupy not installed"
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() < 1:
            return "no CUDA device"
    except Exception as exc:  # no driver, no device
        return f"no usable CUDA device ({type(exc).__name__})"
    return None


def _trt_reason() -> str | None:
    if importlib.util.find_spec("tensorrt") is None:
        return "tensorrt not installed"
    return _cupy_reason()


def pytest_collection_modifyitems(config, items):
    """The markers of pyproject.toml become skips with a reason, as in tests/conftest.py."""
    probes = {"cupy": _cupy_reason, "gpu": _cupy_reason, "trt": _trt_reason}
    cache: dict[str, str | None] = {}
    for item in items:
        for marker, probe in probes.items():
            if marker in item.keywords:
                if marker not in cache:
                    cache[marker] = probe()
                if cache[marker] is not None:
                    item.add_marker(pytest.mark.skip(reason=cache[marker]))
                break
