"""What this machine can run: TensorRT (three levels), CuPy and CUDA devices, ONNX Runtime providers.

`capabilities()` imports the optional libraries that are installed (it is the one place meant to
do so) and never raises for a missing one: every check carries a reason. `choose_backend` turns
a requested backend ("auto" or an explicit name) into the backend to use and a sentence saying
why, so `--backend auto` can tell the user what it picked.
"""

from __future__ import annotations

import importlib
import os
import platform
from dataclasses import asdict, dataclass, field
from typing import Any

from vsslrt.engine import backends
from vsslrt.engine.cache import BuildEnvironment
from vsslrt.engine.trt_common import is_installed, load_cupy, load_tensorrt, make_logger
from vsslrt.errors import BackendUnavailableError, InputError, missing_extra



@dataclass(frozen=True)
class Check:
    """One yes/no capability with the reason for the answer."""

    ok: bool
    reason: str


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    compute_capability: str
    memory_gib: float


@dataclass(frozen=True)
class CpuInfo:
    model: str
    logical_cores: int
    usable_cores: int
    machine: str


@dataclass(frozen=True)
class Capabilities:
    """Everything `vsslrt doctor` reports and `choose_backend` decides from."""

    tensorrt_installed: Check
    tensorrt_loadable: Check
    tensorrt_cuda: Check
    tensorrt_version: str | None
    cupy_installed: Check
    cuda_usable: Check
    cupy_version: str | None
    cuda_devices: tuple[GpuInfo, ...]
    driver_version: str | None
    cuda_runtime_version: str | None
    onnxruntime_version: str | None
    ort_providers: tuple[str, ...]
    cpu: CpuInfo
    python_version: str = field(default_factory=platform.python_version)

    @property
    def tensorrt_usable(self) -> bool:
        return self.tensorrt_installed.ok and self.tensorrt_loadable.ok and self.tensorrt_cuda.ok

    @property
    def cuda_device_count(self) -> int:
        return len(self.cuda_devices)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["tensorrt_usable"] = self.tensorrt_usable
        data["cuda_device_count"] = self.cuda_device_count
        return data


# -- individual probes ---------------------------------------------------------------------


def cpu_info() -> CpuInfo:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    logical = os.cpu_count() or 1
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else logical
    return CpuInfo(model=model, logical_cores=logical, usable_cores=usable, machine=platform.machine())


def _probe_tensorrt() -> tuple[Check, Check, Check, str | None]:
    """The three levels of engine-notes §2.1, each stopping the ones below it."""
    skipped = Check(False, "not checked: the level above failed")
    if not is_installed("tensorrt"):
        return Check(False, "package not installed (pip install 'vsslrt[trt]')"), skipped, skipped, None
    installed = Check(True, "package found")
    try:
        trt = load_tensorrt()
    except BackendUnavailableError as exc:
        return installed, Check(False, exc.message), skipped, None
    version = str(getattr(trt, "__version__", "unknown"))
    loadable = Check(True, f"libraries loaded (TensorRT {version})")
    try:
        trt.Runtime(make_logger(trt))
    except TypeError as exc:  # "factory function returned nullptr": no usable GPU or driver
        return installed, loadable, Check(False, f"CUDA initialisation failed: {exc}"), version
    except Exception as exc:  # noqa: BLE001 - the probe reports every failure instead of raising
        return installed, loadable, Check(False, f"{type(exc).__name__}: {exc}"), version
    return installed, loadable, Check(True, "trt.Runtime created"), version


@dataclass(frozen=True)
class _CupyProbe:
    installed: Check
    usable: Check
    version: str | None = None
    devices: tuple[GpuInfo, ...] = ()
    driver: str | None = None
    runtime: str | None = None


def _probe_cupy() -> _CupyProbe:
    skipped = Check(False, "not checked: CuPy is not importable")
    if not is_installed("cupy"):
        return _CupyProbe(Check(False, "package not installed (pip install 'vsslrt[gpu]')"), skipped)
    try:
        cupy = load_cupy()
    except BackendUnavailableError as exc:
        return _CupyProbe(Check(False, exc.message), skipped)
    installed = Check(True, "package imported")
    version = str(getattr(cupy, "__version__", "unknown"))
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
        devices = tuple(_gpu(cupy, i) for i in range(count))
        driver = _cuda_version(cupy.cuda.runtime.driverGetVersion())
        runtime = _cuda_version(cupy.cuda.runtime.runtimeGetVersion())
    except Exception as exc:  # noqa: BLE001 - e.g. cudaErrorInsufficientDriver on a machine without a GPU
        return _CupyProbe(installed, Check(False, f"no usable CUDA device ({type(exc).__name__}: {exc})"), version)
    if not devices:
        return _CupyProbe(installed, Check(False, "no CUDA device visible"), version, (), driver, runtime)
    return _CupyProbe(installed, Check(True, f"{len(devices)} CUDA device(s)"), version, devices, driver, runtime)


def _gpu(cupy: Any, index: int) -> GpuInfo:
    props = cupy.cuda.runtime.getDeviceProperties(index)
    name = props["name"]
    name = name.decode() if isinstance(name, bytes) else str(name)
    return GpuInfo(
        index=index,
        name=name,
        compute_capability=f"{props['major']}.{props['minor']}",
        memory_gib=round(props.get("totalGlobalMem", 0) / 2**30, 1),
    )


def _cuda_version(value: int) -> str:
    """CUDA encodes versions as 1000 * major + 10 * minor (13000 -> "13.0")."""
    value = int(value)
    return f"{value // 1000}.{(value % 1000) // 10}"


def _probe_onnxruntime() -> tuple[str | None, tuple[str, ...]]:
    if not is_installed("onnxruntime"):
        return None, ()
    try:
        ort = importlib.import_module("onnxruntime")
        return str(ort.__version__), tuple(ort.get_available_providers())
    except Exception:  # noqa: BLE001 - a broken install is reported as absent
        return None, ()


def capabilities() -> Capabilities:
    """Probe everything; never raises for a missing or broken optional library."""
    trt_installed, trt_loadable, trt_cuda, trt_version = _probe_tensorrt()
    cupy = _probe_cupy()
    ort_version, providers = _probe_onnxruntime()
    return Capabilities(
        tensorrt_installed=trt_installed,
        tensorrt_loadable=trt_loadable,
        tensorrt_cuda=trt_cuda,
        tensorrt_version=trt_version,
        cupy_installed=cupy.installed,
        cuda_usable=cupy.usable,
        cupy_version=cupy.version,
        cuda_devices=cupy.devices,
        driver_version=cupy.driver,
        cuda_runtime_version=cupy.runtime,
        onnxruntime_version=ort_version,
        ort_providers=providers,
        cpu=cpu_info(),
    )


def build_environment(*, trt: Any = None, cupy: Any = None, device: int | None = None) -> BuildEnvironment:
    """The TensorRT version, GPU and driver an engine built or run here is tied to.

    Args:
        trt: The tensorrt module. Defaults to importing it.
        cupy: The cupy module. Defaults to importing it.
        device: CUDA device index. Defaults to CuPy's current device.
    """
    trt = load_tensorrt(trt)
    cupy = load_cupy(cupy)
    try:
        index = cupy.cuda.runtime.getDevice() if device is None else device
        gpu = _gpu(cupy, index)
        driver = _cuda_version(cupy.cuda.runtime.driverGetVersion())
        runtime = _cuda_version(cupy.cuda.runtime.runtimeGetVersion())
    except Exception as exc:  # noqa: BLE001 - CuPy raises its own CUDA error types
        raise BackendUnavailableError(
            f"cuda: expected a usable CUDA device, got {type(exc).__name__}: {exc}.",
            hint="check the GPU and driver with nvidia-smi and `vsslrt doctor`",
        ) from exc
    return BuildEnvironment(
        tensorrt_version=str(trt.__version__),
        gpu_name=gpu.name,
        compute_capability=gpu.compute_capability,
        driver_version=driver,
        cuda_version=runtime,
    )


# -- backend choice ------------------------------------------------------------------------


def choose_backend(requested: str, caps: Capabilities) -> tuple[str, str]:
    """Resolve a requested backend against what this machine has.

    "auto" prefers native TensorRT (fastest, needs tensorrt + CuPy + a GPU), then ONNX Runtime's
    CUDA provider (needs onnxruntime-gpu and a visible device), then ONNX Runtime on the CPU.
    ONNX Runtime's TensorRT provider ("ort-trt") is never chosen automatically: when TensorRT
    works, the native path is faster and gives us the engine cache and manifest checks.

    Returns:
        (backend, reason): the backend name and one sentence saying why.

    Raises:
        InputError: Unknown backend name.
        BackendUnavailableError: An explicitly requested backend cannot run here (the message
            names what is missing), or nothing at all can run ("auto" without onnxruntime).
    """
    backends.check_choice(requested)
    problems = {name: _why_not(name, caps) for name in backends.BACKEND_NAMES}
    if requested != "auto":
        problem = problems[requested]
        if problem is not None:
            raise problem
        return requested, f"{requested} was requested and is available"
    if problems["trt"] is None:
        gpu = caps.cuda_devices[0].name
        return "trt", f"TensorRT {caps.tensorrt_version} and a CUDA device ({gpu}) are usable"
    if problems["ort-cuda"] is None:
        return "ort-cuda", f"TensorRT is not usable ({_short(problems['trt'])}); ONNX Runtime's CUDA provider is"
    if problems["ort"] is None:
        gpu_note = _short(problems["trt"]) if caps.cuda_device_count == 0 else _short(problems["ort-cuda"])
        return "ort", f"no GPU backend is usable ({gpu_note}); running ONNX Runtime on the CPU"
    raise problems["ort"]


def _why_not(backend: str, caps: Capabilities) -> BackendUnavailableError | None:
    """None when `backend` can run here, else the error that explains why not."""
    if backend == "trt":
        if not caps.tensorrt_installed.ok:
            return missing_extra("tensorrt", "trt", "run the trt backend")
        for check in (caps.tensorrt_loadable, caps.tensorrt_cuda):
            if not check.ok:
                return BackendUnavailableError(
                    f"backend trt: expected TensorRT to be usable, got: {check.reason.rstrip('.')}.",
                    hint="run `vsslrt doctor` for details",
                )
        if not caps.cupy_installed.ok:
            return missing_extra("cupy", "gpu", "run the trt backend")
        if not caps.cuda_usable.ok:
            return BackendUnavailableError(
                f"backend trt: expected a CUDA device through CuPy, got: {caps.cuda_usable.reason}.",
                hint="run `vsslrt doctor` for details",
            )
        return None
    if backend == "torch":  # its device (CUDA or the CPU) is chosen when the runner loads
        return None if is_installed("torch") else missing_extra("torch", "export", "run the torch backend")
    if caps.onnxruntime_version is None:
        extra = "cpu" if backend == "ort" else "gpu"
        return missing_extra("onnxruntime", extra, f"run the {backend} backend")
    entry = backends.get(backend)
    provider = entry.ort_provider_name
    if provider not in caps.ort_providers:
        return BackendUnavailableError(
            f"backend {backend}: expected ONNX Runtime to offer {provider}, got {', '.join(caps.ort_providers) or 'none'}.",
            hint="install onnxruntime-gpu in place of onnxruntime (pip uninstall onnxruntime; pip install 'vsslrt[gpu]')",
        )
    if entry.needs_gpu and caps.cuda_device_count == 0:
        return BackendUnavailableError(
            f"backend {backend}: expected a visible CUDA device, got none ({caps.cuda_usable.reason}).",
            hint="run `vsslrt doctor` for details",
        )
    return None


def _short(error: BackendUnavailableError | None) -> str:
    return error.message.rstrip(".") if error is not None else "available"
