"""Loading TensorRT and CuPy, and the few version-dependent choices the TensorRT code makes.

TensorRT can be absent in three different ways (engine-notes §2.1), and each gets its own
message: the package is not installed; the Python bindings import but their shared libraries do
not load; the libraries load but CUDA cannot be initialised (`trt.Builder(...)` or
`trt.Runtime(...)` raise TypeError "factory function returned nullptr").

Every function takes the `tensorrt` module as an argument (or imports it when given None), so
tests can pass a stand-in module and production code pays the import only when it builds or runs.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from typing import Any

from vsslrt.errors import BackendUnavailableError, missing_extra


def is_installed(module_name: str) -> bool:
    """Whether `module_name` can be found, without importing it.

    A module put in `sys.modules` (a test stand-in) counts as installed; `None` there (the
    standard way to block an import) counts as absent.
    """
    if module_name in sys.modules:
        return sys.modules[module_name] is not None
    try:
        return importlib.util.find_spec(module_name) is not None
    except (ImportError, ValueError):
        return False


def load_tensorrt(module: Any = None) -> Any:
    """Return the tensorrt module, or raise BackendUnavailableError saying which level failed.

    Args:
        module: A tensorrt module (or stand-in) to use as is. Defaults to importing `tensorrt`.
    """
    if module is not None:
        return module
    if not is_installed("tensorrt"):
        raise missing_extra("tensorrt", "trt", "build or run TensorRT engines")
    try:
        return importlib.import_module("tensorrt")
    except (ImportError, OSError) as exc:
        raise BackendUnavailableError(
            f"tensorrt: expected its shared libraries (libnvinfer, libnvonnxparser) to load, got: {exc}.",
            hint="install the full package, e.g. pip install 'vsslrt[trt]' (the -libs wheel comes from "
            "NVIDIA's index), or use the NGC TensorRT container",
        ) from exc


def load_cupy(module: Any = None) -> Any:
    """Return the cupy module, or raise the standard missing-extra error."""
    if module is not None:
        return module
    if not is_installed("cupy"):
        raise missing_extra("cupy", "gpu", "hold TensorRT inputs and outputs in GPU memory")
    try:
        return importlib.import_module("cupy")
    except (ImportError, OSError) as exc:
        raise BackendUnavailableError(
            f"cupy: expected the module to import, got: {exc}.",
            hint="install the CuPy wheel that matches your CUDA major version (vsslrt[gpu] or vsslrt[gpu-cuda12])",
        ) from exc


def version_tuple(version: str) -> tuple[int, ...]:
    """'11.4.0.106' -> (11, 4, 0, 106); '10.16.1.post1' -> (10, 16, 1); '' -> ()."""
    match = re.match(r"\d+(?:\.\d+)*", str(version))
    return tuple(int(p) for p in match.group(0).split(".")) if match else ()


def trt_major(trt: Any) -> int:
    """Major version of a tensorrt module; versions before 10 are refused."""
    version = version_tuple(getattr(trt, "__version__", "0"))
    major = version[0] if version else 0
    if major < 10:
        raise BackendUnavailableError(
            f"tensorrt: expected version 10.x or 11.x, got {getattr(trt, '__version__', 'unknown')}.",
            hint="pip install 'vsslrt[trt]' (TensorRT 11)",
        )
    return major


def network_flags(trt: Any) -> int:
    """Flags for `builder.create_network`: a strongly typed network on every supported version.

    TensorRT 11 is always strongly typed and its STRONGLY_TYPED flag is a deprecated no-op, so the
    flags are 0. On 10.x strong typing is opted into with the STRONGLY_TYPED flag. EXPLICIT_BATCH
    is never set: ignored since 10.0 and removed from the 11.x enum.
    """
    if trt_major(trt) >= 11:
        return 0
    return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)


def make_logger(trt: Any) -> Any:
    """A TensorRT logger that only reports warnings and errors (TensorRT prints them itself)."""
    return trt.Logger(trt.Logger.WARNING)


def _cuda_unusable(what: str, exc: Exception) -> BackendUnavailableError:
    return BackendUnavailableError(
        f"tensorrt: expected {what} to initialise CUDA, got: {exc}.",
        hint="check that a GPU and a working NVIDIA driver are visible (nvidia-smi, vsslrt doctor)",
    )


def create_builder(trt: Any, logger: Any) -> Any:
    """`trt.Builder(logger)`, with TensorRT's CUDA-initialisation TypeError turned into a clear error."""
    try:
        return trt.Builder(logger)
    except TypeError as exc:
        raise _cuda_unusable("trt.Builder", exc) from exc


def create_runtime(trt: Any, logger: Any) -> Any:
    """`trt.Runtime(logger)`, with TensorRT's CUDA-initialisation TypeError turned into a clear error."""
    try:
        return trt.Runtime(logger)
    except TypeError as exc:
        raise _cuda_unusable("trt.Runtime", exc) from exc
