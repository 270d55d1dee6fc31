"""Fixtures for engine tests: the tiny committed ONNX models and the stand-in TensorRT/CuPy modules."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

_FAKES_PATH = Path(__file__).with_name("_fakes.py")
_spec = importlib.util.spec_from_file_location("vsslrt_test_engine_fakes", _FAKES_PATH)
fakes = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = fakes
_spec.loader.exec_module(fakes)

MODELS = fakes.MODELS_DIR


@pytest.fixture(scope="session")
def models_dir() -> Path:
    return MODELS


@pytest.fixture(scope="session", name="fakes")
def fakes_module():
    """The stand-in module factory (tests/engine/_fakes.py)."""
    return fakes


@pytest.fixture
def fake_cupy():
    return fakes.make_fake_cupy()


@pytest.fixture
def make_trt(fake_cupy):
    """Factory: make_trt("10.16.1") -> a fake tensorrt module wired to the fake CuPy."""

    def make(version: str = "11.4.0.106", **kwargs):
        return fakes.make_fake_tensorrt(version, cupy=fake_cupy, **kwargs)

    return make


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def make_feeds(rng):
    """Factory: make_feeds(("image",), batch=3) -> float32 inputs for the tiny models."""
    shapes = {"image": (3, 224, 224), "audio": (1, 16, 24)}

    def make(names=("image", "audio"), batch=2):
        return {n: rng.standard_normal((batch, *shapes[n])).astype(np.float32) for n in names}

    return make
