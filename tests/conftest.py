"""Capability probe: turns the gpu/trt/cupy markers into skips with reasons (or failures with
VSSLRT_REQUIRE_GPU=1), and provides the `xp` fixture (NumPy always, CuPy when usable)."""

from __future__ import annotations

import functools
import importlib.util
import os

import numpy as np
import pytest


@functools.lru_cache(maxsize=None)
def _cupy_reason() -> str | None:
    if importlib.util.find_spec("cupy") is None:
        return "cupy not installed"
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() < 1:
            return "no CUDA device"
    except Exception as exc:  # driver missing, no device, ...
        return f"no usable CUDA device ({type(exc).__name__})"
    return None


@functools.lru_cache(maxsize=None)
def _trt_reason() -> str | None:
    if importlib.util.find_spec("tensorrt") is None:
        return "tensorrt not installed"
    try:
        import tensorrt as trt  # noqa: F401

        trt.Runtime(trt.Logger(trt.Logger.ERROR))
    except (ImportError, OSError) as exc:
        return f"tensorrt libraries not loadable ({exc})"
    except TypeError:
        return "tensorrt cannot initialise CUDA"
    return None


def _reason_for(marker: str) -> str | None:
    if marker in ("gpu", "cupy"):
        return _cupy_reason()
    if marker == "trt":
        return _trt_reason() or _cupy_reason()
    return None


def pytest_collection_modifyitems(config, items):
    require = os.environ.get("VSSLRT_REQUIRE_GPU") == "1"
    for item in items:
        for marker in ("gpu", "cupy", "trt"):
            if marker in item.keywords:
                reason = _reason_for(marker)
                if reason is None:
                    continue
                if require:
                    item.user_properties.append(("required_gpu_missing", reason))
                    item.fixturenames.insert(0, "_fail_required_gpu")
                else:
                    item.add_marker(pytest.mark.skip(reason=reason))
                break


@pytest.fixture
def _fail_required_gpu(request):
    reason = dict(request.node.user_properties).get("required_gpu_missing", "probe failed")
    pytest.fail(f"VSSLRT_REQUIRE_GPU=1 but {reason}")


def _xp_params():
    return [
        pytest.param("numpy", id="numpy"),
        pytest.param("cupy", id="cupy", marks=pytest.mark.cupy),
    ]


@pytest.fixture(params=_xp_params())
def xp(request):
    """The array namespace under test: NumPy, and CuPy where a device exists."""
    if request.param == "numpy":
        return np
    import cupy

    return cupy
