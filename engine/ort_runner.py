"""ONNX Runtime runner: CPU everywhere, CUDA / TensorRT execution providers with onnxruntime-gpu.

ONNX Runtime quietly runs on the CPU when a requested GPU provider cannot be loaded (it only
logs a warning). This runner checks `session.get_providers()` after creating the session and
raises BackendUnavailableError instead, unless the caller asked for "auto".
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vsslrt.engine.base import Runner, TensorSpec
from vsslrt.errors import BackendUnavailableError, InputError, missing_extra

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"

PROVIDER_CHOICES = ("cpu", "cuda", "tensorrt", "auto")
"""Values of `provider`: one execution provider, or "auto" for the best one available."""

_PROVIDER_ORDER = {"cpu": (CPU,), "cuda": (CUDA, CPU), "tensorrt": (TENSORRT, CUDA, CPU)}

DISABLED_OPTIMIZERS = ["QDQPropagationTransformer"]
_GRAPH_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}
_EXECUTION_MODES = {"sequential": "ORT_SEQUENTIAL", "parallel": "ORT_PARALLEL"}

_ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


def import_onnxruntime() -> Any:
    """Import onnxruntime or raise the standard missing-extra error."""
    try:
        import onnxruntime
    except ImportError:
        raise missing_extra("onnxruntime", "cpu", "run ONNX models") from None
    return onnxruntime


def usable_cpu_count() -> int:
    """CPU cores this process may run on (respects taskset/cgroup affinity where the OS reports it)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


class OrtRunner(Runner):
    """Run an ONNX file with ONNX Runtime.

    CPU defaults come from `benchmarks/bench_engine.py --tune` (EZ-VSL encoder pair, batch 16,
    2-core Xeon shared with other jobs, variants interleaved; throughput and model GFLOP per
    process CPU second as a share of a 4096^2 NumPy matmul's):

    * graph optimisation "all": 8.9 samples/s, 83 % (vs "extended" 6.0 / 62 %, "basic" 6.2 / 57 %);
    * sequential execution: the encoders are one chain, "parallel" only adds scheduling
      (7.6 samples/s, 57 %);
    * no spin-waiting: spinning bought no throughput (9.4 samples/s) and wasted CPU (78 %),
      which on a shared machine is taken from other processes;
    * intra-op threads = usable cores. Under that load (about half a core per process) one
      thread did slightly better (9.8 samples/s, 90 %), but its per-CPU-second efficiency is only
      8 % above two threads', so with two free cores two threads give about 1.8x one thread.

    Args:
        model_path: The .onnx file (external weight files are resolved beside it).
        provider: "cpu", "cuda", "tensorrt" or "auto". A named GPU provider must really be active
            after session creation, or activation raises BackendUnavailableError; "auto" takes
            the best provider that loads and records it in `active_providers`. Defaults to "cpu".
        intra_op_num_threads: Threads inside one operator. Defaults to the usable core count.
        graph_optimization_level: "disable", "basic", "extended" or "all". Defaults to "all".
        execution_mode: "sequential" or "parallel". Defaults to "sequential".
        allow_spinning: Let idle worker threads spin. Defaults to False.
        provider_options: Extra options per provider name, e.g.
            {"TensorrtExecutionProvider": {"trt_engine_cache_path": "cache"}}. Defaults to none.
        name: Name used in messages. Defaults to the file name.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        *,
        provider: str = "cpu",
        intra_op_num_threads: int | None = None,
        graph_optimization_level: str = "all",
        execution_mode: str = "sequential",
        allow_spinning: bool = False,
        provider_options: Mapping[str, Mapping[str, Any]] | None = None,
        name: str | None = None,
    ) -> None:
        self.model_path = Path(model_path)
        super().__init__(name or self.model_path.name)
        _check_choice(self.name, "provider", provider, PROVIDER_CHOICES)
        _check_choice(self.name, "graph_optimization_level", graph_optimization_level, tuple(_GRAPH_LEVELS))
        _check_choice(self.name, "execution_mode", execution_mode, tuple(_EXECUTION_MODES))
        if intra_op_num_threads is not None and intra_op_num_threads < 1:
            raise InputError(
                f"{self.name}: expected intra_op_num_threads to be >= 1, got {intra_op_num_threads}."
            )
        self.provider = provider
        self.intra_op_num_threads = intra_op_num_threads
        self.graph_optimization_level = graph_optimization_level
        self.execution_mode = execution_mode
        self.allow_spinning = allow_spinning
        self.provider_options = {k: dict(v) for k, v in (provider_options or {}).items()}
        self.active_providers: tuple[str, ...] = ()
        self.session: Any = None
        self._output_names: list[str] = []

    # -- lifecycle -----------------------------------------------------------------------

    def activate_impl(self) -> None:
        ort = import_onnxruntime()
        if not self.model_path.is_file():
            raise InputError(
                f"{self.model_path}: expected an ONNX file, got a path that does not exist.",
                hint="export the model first (vsslrt build) or check the path",
            )
        available = tuple(ort.get_available_providers())
        providers = self._requested_providers(available)
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.intra_op_num_threads or usable_cpu_count()
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _GRAPH_LEVELS[self.graph_optimization_level])
        options.execution_mode = getattr(ort.ExecutionMode, _EXECUTION_MODES[self.execution_mode])
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.allow_spinning else "0")
        # Errors only: a provider fallback is reported by the check below, not by ORT's log.
        options.log_severity_level = 3
        provider_args = [(p, self.provider_options.get(p, {})) for p in providers]
        try:
            with warnings.catch_warnings():
                # ORT warns when it drops a provider; _check_active turns that into an error
                # (or, for "auto", into active_providers), so the warning adds nothing.
                warnings.filterwarnings("ignore", message="Specified provider")
                # In an int8 graph that keeps its stem fp32 (--calib-fp32-stem), QDQ propagation would
                # move the first QuantizeLinear up across the stem's fp32 MaxPool, onto ONNX Runtime's
                # NCHW uint8 MaxPool: about 45 ms of a 150 ms EZ-VSL encoder batch on the CPU, against
                # a few ms for the fp32 one (NCHWc). Graphs without Q/DQ nodes are not affected.
                session = ort.InferenceSession(str(self.model_path), sess_options=options, providers=provider_args,
                                               disabled_optimizers=DISABLED_OPTIMIZERS)
        except Exception as exc:  # ORT raises its own pybind exception types for bad models
            raise InputError(
                f"{self.model_path}: expected a model ONNX Runtime can load, got an error: {exc}",
                hint="check the file with `python -m onnx.checker` or re-export it",
            ) from exc
        self.active_providers = tuple(session.get_providers())
        self._check_active(providers, available)
        self.session = session
        self._output_names = [o.name for o in session.get_outputs()]

    def deactivate_impl(self) -> None:
        self.session = None
        self.active_providers = ()

    def input_specs_impl(self) -> dict[str, TensorSpec]:
        specs = {}
        for node in self.session.get_inputs():
            if node.type not in _ORT_TYPES:
                raise InputError(f"{self.model_path}: expected input '{node.name}' to be a numeric tensor, got {node.type}.")
            specs[node.name] = TensorSpec.from_runtime(_ORT_TYPES[node.type], node.shape)
        return specs

    # -- inference -----------------------------------------------------------------------

    def infer_impl(self, feeds: dict[str, Any], kind: str) -> dict[str, Any]:
        if kind == "cupy" and self.active_providers[0] in (CUDA, TENSORRT):
            return self._infer_device(feeds)
        if kind == "cupy":  # a CPU session: copy to the host, the base converts the outputs back
            feeds = {name: value.get() for name, value in feeds.items()}
        values = self.session.run(self._output_names, feeds)
        return dict(zip(self._output_names, values))

    def _infer_device(self, feeds: dict[str, Any]) -> dict[str, Any]:
        """Bind CuPy device memory directly (no host round trip) and return CuPy outputs."""
        import cupy

        # ORT's CUDA provider works on its own stream: inputs written on the caller's stream
        # must be complete before the run starts.
        cupy.cuda.get_current_stream().synchronize()
        binding = self.session.io_binding()
        keep_alive = []
        for name, value in feeds.items():
            value = cupy.ascontiguousarray(value)
            keep_alive.append(value)
            binding.bind_input(name, "cuda", value.device.id, value.dtype, tuple(value.shape), value.data.ptr)
        device_id = keep_alive[0].device.id if keep_alive else 0
        for name in self._output_names:
            binding.bind_output(name, "cuda", device_id)
        self.session.run_with_iobinding(binding)
        binding.synchronize_outputs()
        # DLPack hands the ORT-owned device buffers to CuPy without a copy; each OrtValue stays
        # alive as long as the CuPy array that wraps it.
        return {name: cupy.from_dlpack(value) for name, value in zip(self._output_names, binding.get_outputs())}

    # -- providers -------------------------------------------------------------------------

    def _requested_providers(self, available: Sequence[str]) -> list[str]:
        if self.provider == "auto":
            for choice in ("tensorrt", "cuda", "cpu"):
                wanted = _PROVIDER_ORDER[choice]
                if wanted[0] in available:
                    return [p for p in wanted if p in available]
            return [CPU]
        wanted = _PROVIDER_ORDER[self.provider]
        if wanted[0] not in available:
            raise BackendUnavailableError(
                f"{self.name}: expected ONNX Runtime to offer {wanted[0]}, got only {', '.join(available) or 'none'}.",
                hint=_gpu_hint(wanted[0]),
            )
        return [p for p in wanted if p in available]

    def _check_active(self, requested: Sequence[str], available: Sequence[str]) -> None:
        """Refuse a session whose first requested provider did not load (no silent CPU fallback)."""
        if self.provider in ("auto", "cpu"):
            return
        primary = requested[0]
        if primary not in self.active_providers:
            raise BackendUnavailableError(
                f"{self.name}: expected {primary} to be active after session creation, "
                f"got {', '.join(self.active_providers) or 'none'} (ONNX Runtime fell back silently).",
                hint=_gpu_hint(primary) + "; or use provider='auto' to accept the fallback",
            )


def _gpu_hint(provider: str) -> str:
    if provider == TENSORRT:
        return (
            "install onnxruntime-gpu (pip install 'vsslrt[gpu]', after uninstalling onnxruntime) and the "
            "TensorRT libraries, and check that a CUDA device is visible (vsslrt doctor)"
        )
    return (
        "install onnxruntime-gpu (pip install 'vsslrt[gpu]', after uninstalling onnxruntime: the two "
        "packages share one module) and check that a CUDA device is visible (vsslrt doctor)"
    )


def _check_choice(subject: str, field: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise InputError(f"{subject}: expected {field} to be one of {', '.join(choices)}, got {value!r}.")
