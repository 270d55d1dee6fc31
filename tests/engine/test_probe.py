"""Capability probe (three TensorRT levels, CuPy, ONNX Runtime) and backend choice (`vsslrt doctor`: tests/cli)."""

from __future__ import annotations

import dataclasses
import sys

import pytest

from vsslrt.engine.probe import Capabilities, Check, CpuInfo, GpuInfo, build_environment, capabilities, choose_backend
from vsslrt.errors import BackendUnavailableError, InputError

OK = Check(True, "ok")
CPU = CpuInfo("test cpu", 2, 2, "x86_64")
H100 = GpuInfo(0, "NVIDIA H100 80GB HBM3", "9.0", 79.1)


def caps(**changes) -> Capabilities:
    """A machine with everything working; `changes` knock pieces out."""
    base = Capabilities(
        tensorrt_installed=OK, tensorrt_loadable=OK, tensorrt_cuda=OK, tensorrt_version="11.4.0.106",
        cupy_installed=OK, cuda_usable=OK, cupy_version="14.2.0", cuda_devices=(H100,),
        driver_version="13.0", cuda_runtime_version="13.0", onnxruntime_version="1.32.0",
        ort_providers=("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"), cpu=CPU,
    )
    return dataclasses.replace(base, **changes)


NO_TRT = dict(tensorrt_installed=Check(False, "package not installed"), tensorrt_version=None)
NO_GPU = dict(cuda_usable=Check(False, "no CUDA device visible"), cuda_devices=())


def test_probe_with_working_stand_ins(make_trt, fake_cupy, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", make_trt())
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy)
    found = capabilities()
    assert found.tensorrt_usable and found.tensorrt_version == "11.4.0.106"
    assert found.cuda_devices == (GpuInfo(0, "NVIDIA H100 80GB HBM3", "9.0", 80.0),)
    assert (found.driver_version, found.cuda_runtime_version) == ("13.0", "13.0")
    assert "CPUExecutionProvider" in found.ort_providers
    assert choose_backend("auto", found)[0] == "trt"


def test_probe_reports_each_tensorrt_level(make_trt, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    found = capabilities()
    assert not found.tensorrt_installed.ok and "not installed" in found.tensorrt_installed.reason
    assert found.tensorrt_loadable.reason.startswith("not checked")
    monkeypatch.setitem(sys.modules, "tensorrt", make_trt(cuda_ok=False))
    found = capabilities()
    assert found.tensorrt_installed.ok and found.tensorrt_loadable.ok
    assert not found.tensorrt_cuda.ok and "factory function returned nullptr" in found.tensorrt_cuda.reason
    assert not found.tensorrt_usable


def test_probe_never_raises_on_a_broken_cupy(monkeypatch, fake_cupy):
    def no_driver():
        raise RuntimeError("cudaErrorInsufficientDriver: CUDA driver version is insufficient")

    fake_cupy.cuda.runtime.getDeviceCount = no_driver
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy)
    found = capabilities()
    assert found.cupy_installed.ok and not found.cuda_usable.ok
    assert "cudaErrorInsufficientDriver" in found.cuda_usable.reason and found.cuda_device_count == 0


def test_build_environment_reads_the_device(make_trt, fake_cupy):
    env = build_environment(trt=make_trt("10.16.1"), cupy=fake_cupy)
    assert dataclasses.astuple(env) == ("10.16.1", "NVIDIA H100 80GB HBM3", "9.0", "13.0", "13.0")


@pytest.mark.parametrize(
    ("changes", "backend", "reason"),
    [
        ({}, "trt", "TensorRT 11.4.0.106 and a CUDA device (NVIDIA H100 80GB HBM3) are usable"),
        (NO_TRT, "ort-cuda", "TensorRT is not usable (tensorrt is not installed"),
        (dict(tensorrt_cuda=Check(False, "CUDA initialisation failed")), "ort-cuda", "CUDA initialisation failed"),
        ({**NO_TRT, **NO_GPU}, "ort", "no GPU backend is usable"),
        ({**NO_TRT, "ort_providers": ("CPUExecutionProvider",)}, "ort", "expected ONNX Runtime to offer CUDAExecutionProvider"),
        (dict(cupy_installed=Check(False, "package not installed"), cuda_usable=Check(False, "not checked"), cuda_devices=()), "ort", "cupy is not installed"),
    ],
)
def test_auto_choice_and_reason(changes, backend, reason):
    chosen, why = choose_backend("auto", caps(**changes))
    assert chosen == backend
    assert reason in why


def test_explicit_backends():
    assert choose_backend("ort-trt", caps()) == ("ort-trt", "ort-trt was requested and is available")
    with pytest.raises(BackendUnavailableError, match=r"pip install 'vsslrt\[trt\]'"):
        choose_backend("trt", caps(**NO_TRT))
    with pytest.raises(BackendUnavailableError, match="backend trt: expected TensorRT to be usable, got: CUDA init failed"):
        choose_backend("trt", caps(tensorrt_cuda=Check(False, "CUDA init failed")))
    with pytest.raises(BackendUnavailableError, match="backend ort-cuda: expected a visible CUDA device"):
        choose_backend("ort-cuda", caps(**NO_GPU))
    with pytest.raises(InputError, match="expected one of auto, ort, trt, ort-cuda, ort-trt, torch, got 'tensorrt'"):
        choose_backend("tensorrt", caps())


def test_nothing_usable_names_the_cpu_extra():
    nothing = caps(**NO_TRT, **NO_GPU, onnxruntime_version=None, ort_providers=())
    with pytest.raises(BackendUnavailableError, match=r"onnxruntime is not installed.*vsslrt\[cpu\]"):
        choose_backend("auto", nothing)
