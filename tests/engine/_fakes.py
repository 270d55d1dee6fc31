"""Stand-in `tensorrt` and `cupy` modules for testing our TensorRT logic on a CPU-only machine.

They implement just the API surface vsslrt uses, record what was asked of them, and execute
"engines" with ONNX Runtime on the CPU so runner results can be checked numerically:

* The fake builder's plan is JSON naming the ONNX file and the profile; the fake runtime turns it
  back into an engine whose execution context runs that ONNX file on the tensors found at the
  registered addresses.
* A plan built with BuilderFlag.VERSION_COMPATIBLE is marked as embedding host code, and the fake
  runtime refuses it (returns None, as TensorRT does) unless `engine_host_code_allowed` is True.
* Every public name of the TensorRT stand-in is a TensorRT 11 name, except the test controls and
  records listed in NOT_TENSORRT (tests/engine/test_trt_api_names.py checks this).
* Fake CuPy arrays are NumPy arrays whose class lives in "cupy" (so array-kind detection treats
  them as CuPy), with `.data.ptr`, `.get()`, `.set()`; streams support capture into replayable
  graphs, and capture can be made to fail.
"""

from __future__ import annotations

import itertools
import json
import types
from pathlib import Path
from typing import Any

import numpy as np

# ---------------------------------------------------------------------------------------------
# cupy


class _MemoryPointer:
    def __init__(self, ptr: int) -> None:
        self.ptr = ptr


class FakeCupyArray(np.ndarray):
    __module__ = "cupy"

    @property
    def data(self):  # noqa: D401 - mirrors cupy.ndarray.data (a MemoryPointer)
        return _MemoryPointer(self.__array_interface__["data"][0])

    @property
    def device(self):
        return types.SimpleNamespace(id=0)

    def get(self, stream=None, **_: Any) -> np.ndarray:
        return np.array(self)

    def set(self, arr, stream=None) -> None:
        self[...] = arr


class FakeGraph:
    def __init__(self, ops: list, module: types.ModuleType) -> None:
        self._ops = ops
        self._module = module

    def launch(self, stream=None) -> None:
        self._module.graph_launches += 1
        for op in self._ops:
            op()


class FakeStream:
    _ids = itertools.count(0x1000)

    def __init__(self, module: types.ModuleType, non_blocking: bool = False) -> None:
        self._module = module
        self.ptr = next(self._ids)
        self.non_blocking = non_blocking
        self.capturing: list | None = None
        self.synchronized = 0
        module.streams[self.ptr] = self

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def synchronize(self) -> None:
        self.synchronized += 1

    def begin_capture(self, mode=None) -> None:
        if self._module.capture_error is not None:
            raise RuntimeError(self._module.capture_error)
        self.capturing = []

    def end_capture(self) -> FakeGraph:
        ops, self.capturing = self.capturing or [], None
        return FakeGraph(ops, self._module)


def make_fake_cupy(*, gpu_name: str = "NVIDIA H100 80GB HBM3", cc: tuple[int, int] = (9, 0), driver: int = 13000) -> Any:
    """A fake `cupy` module with one device."""
    cp = types.ModuleType("cupy")
    cp.__version__ = "14.2.0"
    cp.ndarray = FakeCupyArray
    cp.streams = {}
    cp.capture_error = None
    cp.graph_launches = 0
    cp.allocations = {}

    def empty(shape, dtype=np.float32):
        array = np.empty(shape, dtype=dtype).view(FakeCupyArray)
        cp.allocations[array.data.ptr] = array
        return array

    def asarray(obj, dtype=None):
        return np.array(obj, dtype=dtype).view(FakeCupyArray)

    cp.empty = empty
    cp.asarray = asarray
    cp.ascontiguousarray = lambda a: np.ascontiguousarray(a).view(FakeCupyArray)
    default_stream = FakeStream(cp)
    runtime = types.SimpleNamespace(
        getDeviceCount=lambda: 1,
        getDevice=lambda: 0,
        getDeviceProperties=lambda i: {"name": gpu_name.encode(), "major": cc[0], "minor": cc[1], "totalGlobalMem": 80 * 2**30},
        driverGetVersion=lambda: driver,
        runtimeGetVersion=lambda: 13000,
    )
    cp.cuda = types.SimpleNamespace(
        Stream=lambda non_blocking=False: FakeStream(cp, non_blocking),
        get_current_stream=lambda: default_stream,
        runtime=runtime,
    )
    return cp


# ---------------------------------------------------------------------------------------------
# tensorrt


class _Enum:
    def __init__(self, **members: int) -> None:
        for name, value in members.items():
            setattr(self, name, value)


class _ParserError:
    def __init__(self, desc: str) -> None:
        self._desc = desc

    def __str__(self) -> str:
        return f"In node -1 (parseFromFile): INVALID_GRAPH: {self._desc}"


class FakeTensor:
    def __init__(self, name: str, shape: tuple[int, ...]) -> None:
        self.name = name
        self.shape = shape


class FakeNetwork:
    def __init__(self, flags: int) -> None:
        self.flags = flags
        self.inputs: list[FakeTensor] = []
        self.onnx_path: str | None = None

    @property
    def num_inputs(self) -> int:
        return len(self.inputs)

    def get_input(self, index: int) -> FakeTensor:
        return self.inputs[index]


class FakeParser:
    def __init__(self, network: FakeNetwork, logger: Any) -> None:
        self.network = network
        self.errors: list[_ParserError] = []

    def parse_from_file(self, path: str) -> bool:
        import onnx

        try:
            model = onnx.load(path)
            onnx.checker.check_model(model)
        except Exception as exc:  # the real parser reports, it does not raise
            self.errors.append(_ParserError(f"{type(exc).__name__}: {str(exc).splitlines()[0]}"))
            return False
        inits = {t.name for t in model.graph.initializer}
        for value in model.graph.input:
            if value.name in inits:
                continue
            dims = value.type.tensor_type.shape.dim
            shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in dims)
            self.network.inputs.append(FakeTensor(value.name, shape))
        self.network.onnx_path = path
        return True

    @property
    def num_errors(self) -> int:
        return len(self.errors)

    def get_error(self, index: int) -> _ParserError:
        return self.errors[index]


class FakeTimingCache:
    def __init__(self, data: bytes) -> None:
        self.loaded = bytes(data)

    def serialize(self) -> bytes:
        return self.loaded + b"|timings"


class FakeConfig:
    def __init__(self, trt: Any) -> None:
        self._trt = trt
        self.pool_limits: dict[Any, int] = {}
        self.builder_optimization_level = 3
        self.profiling_verbosity = None
        self.flags: list[Any] = []
        self.cleared_flags: list[Any] = []
        self.profiles: list[FakeProfile] = []
        self.timing_cache: FakeTimingCache | None = None

    def set_memory_pool_limit(self, pool: Any, size: int) -> None:
        self.pool_limits[pool] = size

    def set_flag(self, flag: Any) -> None:
        self.flags.append(flag)

    def clear_flag(self, flag: Any) -> None:
        self.cleared_flags.append(flag)

    def create_timing_cache(self, data: bytes) -> FakeTimingCache:
        return FakeTimingCache(data)

    def set_timing_cache(self, cache: FakeTimingCache, ignore_mismatch: bool) -> bool:
        self.timing_cache = cache
        return True

    def add_optimization_profile(self, profile: FakeProfile) -> int:
        self.profiles.append(profile)
        return len(self.profiles) - 1


class FakeProfile:
    def __init__(self) -> None:
        self.shapes: dict[str, tuple] = {}

    def set_shape(self, name: str, min, opt, max) -> None:  # noqa: A002 - TensorRT's own parameter names
        self.shapes[name] = (tuple(min), tuple(opt), tuple(max))


class FakeBuilder:
    def __init__(self, trt: Any, logger: Any) -> None:
        if not trt.cuda_ok:
            raise TypeError("pybind11::init(): factory function returned nullptr")
        self._trt = trt

    def create_network(self, flags: int) -> FakeNetwork:
        network = FakeNetwork(flags)
        self._trt.record["networks"].append(network)
        return network

    def create_builder_config(self) -> FakeConfig:
        config = FakeConfig(self._trt)
        self._trt.record["configs"].append(config)
        return config

    def create_optimization_profile(self) -> FakeProfile:
        return FakeProfile()

    def build_serialized_network(self, network: FakeNetwork, config: FakeConfig) -> bytes | None:
        self._trt.record["builds"] += 1
        if self._trt.fail_build or len(config.profiles) != 1:
            return None
        plan = {"onnx": network.onnx_path, "profile": {n: [list(s) for s in v] for n, v in config.profiles[0].shapes.items()},
                "host_code": self._trt.BuilderFlag.VERSION_COMPATIBLE in config.flags}
        return json.dumps(plan).encode()


class FakeInspector:
    def __init__(self, engine: FakeEngine) -> None:
        self._engine = engine
        self.execution_context = None

    def get_engine_information(self, fmt: Any) -> str:
        from vsslrt.engine.trt_builder import onnx_precision

        if self.execution_context is None:
            body, head = "N/A due to dynamic shapes", "N/A due to dynamic shapes"
        elif onnx_precision(self._engine.onnx_path) == "fp16":
            body, head = "Channel major FP16 format where channel % 8 == 0", "Row major linear FP32"
        else:
            body, head = "Row major linear FP32", "Row major linear FP32"
        layers = [
            {"Name": "conv", "LayerType": "CaskConvolution", "Outputs": [{"Format/Datatype": body}]},
            {"Name": "gemm", "LayerType": "CaskGemm", "Outputs": [{"Format/Datatype": body}]},
            {"Name": "pool", "LayerType": "CaskPooling", "Outputs": [{"Format/Datatype": body}]},
            {"Name": "norm", "LayerType": "Myelin", "Outputs": [{"Format/Datatype": head}]},
        ]
        return json.dumps({"Layers": layers, "I/O Tensors": list(self._engine.names)})


class FakeEngine:
    def __init__(self, trt: Any, plan: dict) -> None:
        import onnxruntime as ort

        self._trt = trt
        self.onnx_path = plan["onnx"]
        self.profile = {n: [tuple(s) for s in v] for n, v in plan["profile"].items()}
        self.session = ort.InferenceSession(self.onnx_path, providers=["CPUExecutionProvider"])
        self.inputs = {i.name: tuple(-1 if not isinstance(d, int) else d for d in i.shape) for i in self.session.get_inputs()}
        self.outputs = {o.name: tuple(-1 if not isinstance(d, int) else d for d in o.shape) for o in self.session.get_outputs()}
        self.names = list(self.inputs) + list(self.outputs)

    @property
    def num_io_tensors(self) -> int:
        return len(self.names)

    def get_tensor_name(self, index: int) -> str:
        return self.names[index]

    def get_tensor_mode(self, name: str) -> Any:
        return self._trt.TensorIOMode.INPUT if name in self.inputs else self._trt.TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name: str) -> Any:
        return self._trt.DataType.FLOAT

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return self.inputs.get(name) or self.outputs[name]

    def get_tensor_profile_shape(self, name: str, profile_index: int) -> list[tuple[int, ...]]:
        return self.profile[name]

    def create_execution_context(self) -> FakeContext:
        return FakeContext(self._trt, self)

    def create_engine_inspector(self) -> FakeInspector:
        return FakeInspector(self)


class FakeContext:
    def __init__(self, trt: Any, engine: FakeEngine) -> None:
        self._trt = trt
        self._engine = engine
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.addresses: dict[str, int] = {}
        self.enqueues = 0

    def set_input_shape(self, name: str, shape) -> bool:
        lo, _opt, hi = self._engine.profile[name]
        shape = tuple(int(d) for d in shape)
        if any(not a <= d <= b for a, d, b in zip(lo, shape, hi)):
            return False
        self.shapes[name] = shape
        return True

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        if name in self._engine.inputs:
            return self.shapes[name]
        batch = next(iter(self.shapes.values()))[0]
        return tuple(batch if d == -1 else d for d in self._engine.outputs[name])

    def set_tensor_address(self, name: str, ptr: int) -> bool:
        self.addresses[name] = ptr
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        stream = self._trt.cupy.streams[stream_handle]
        if stream.capturing is not None:
            stream.capturing.append(self._run)
            return True
        self._run()
        return True

    def _run(self) -> None:
        self.enqueues += 1
        memory = self._trt.cupy.allocations
        feeds = {}
        for name in self._engine.inputs:
            shape = self.shapes[name]
            feeds[name] = np.array(memory[self.addresses[name]].reshape(-1)[: int(np.prod(shape))].reshape(shape))
        results = self._engine.session.run(list(self._engine.outputs), feeds)
        for name, value in zip(self._engine.outputs, results):
            flat = memory[self.addresses[name]].reshape(-1)
            flat[: value.size] = value.reshape(-1)


class FakeRuntime:
    def __init__(self, trt: Any, logger: Any) -> None:
        if not trt.cuda_ok:
            raise TypeError("pybind11::init(): factory function returned nullptr")
        self._trt = trt
        self.engine_host_code_allowed = False  # TensorRT's default
        trt.record["runtimes"].append(self)

    def deserialize_cuda_engine(self, data: bytes) -> FakeEngine | None:
        try:
            plan = json.loads(bytes(data))
        except (ValueError, UnicodeDecodeError):
            return None
        if plan.get("host_code") and not self.engine_host_code_allowed:
            return None  # TensorRT logs that the plan needs engine_host_code_allowed and returns None
        return FakeEngine(self._trt, plan)


def make_fake_tensorrt(version: str = "11.4.0.106", *, cupy: Any = None, cuda_ok: bool = True) -> Any:
    """A fake `tensorrt` module with the 10.x or 11.x enum surface (decided by `version`)."""
    major = int(version.split(".")[0])
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.cuda_ok = cuda_ok
    trt.fail_build = False
    trt.cupy = cupy
    trt.record = {"networks": [], "configs": [], "builds": 0, "runtimes": []}

    class Logger:
        ERROR, WARNING, INFO = 1, 2, 3

        def __init__(self, severity: int = 2) -> None:
            self.severity = severity

    trt.Logger = Logger
    if major >= 11:
        # 11.x: EXPLICIT_BATCH and every precision builder flag are gone; STRONGLY_TYPED is a no-op.
        trt.NetworkDefinitionCreationFlag = _Enum(STRONGLY_TYPED=1)
        trt.BuilderFlag = _Enum(TF32=2, REFIT=3, VERSION_COMPATIBLE=4)
    else:
        trt.NetworkDefinitionCreationFlag = _Enum(EXPLICIT_BATCH=0, STRONGLY_TYPED=1)
        trt.BuilderFlag = _Enum(FP16=0, INT8=1, TF32=2, REFIT=3, VERSION_COMPATIBLE=4, BF16=5)
    trt.MemoryPoolType = _Enum(WORKSPACE=0)
    trt.ProfilingVerbosity = _Enum(LAYER_NAMES_ONLY=0, DETAILED=1, NONE=2)
    trt.LayerInformationFormat = _Enum(ONELINE=0, JSON=1)
    trt.TensorIOMode = _Enum(NONE=0, INPUT=1, OUTPUT=2)
    trt.DataType = _Enum(FLOAT=0, HALF=1)
    trt.nptype = lambda dt: {0: np.float32, 1: np.float16}[dt]
    trt.Builder = lambda logger: FakeBuilder(trt, logger)
    trt.OnnxParser = FakeParser
    trt.Runtime = lambda logger: FakeRuntime(trt, logger)
    return trt


MODELS_DIR = Path(__file__).resolve().parents[1] / "models"

# Public attributes of the TensorRT stand-in that are not TensorRT API: test controls and records of
# what was asked. Every other public name must exist in TensorRT 11 (tests/engine/test_trt_api_names.py).
NOT_TENSORRT = {
    "tensorrt": {"cuda_ok", "fail_build", "cupy", "record"},
    "FakeNetwork": {"flags", "inputs", "onnx_path"},
    "FakeParser": {"network", "errors"},
    "FakeTimingCache": {"loaded"},
    "FakeConfig": {"pool_limits", "flags", "cleared_flags", "profiles", "timing_cache"},
    "FakeProfile": {"shapes"},
    "FakeEngine": {"onnx_path", "profile", "session", "inputs", "outputs", "names"},
    "FakeContext": {"shapes", "addresses", "enqueues"},
    "Logger": {"severity"},
}


# ---------------------------------------------------------------------------------------------
# capabilities


def capabilities(*, with_trt: bool):
    """`vsslrt.engine.probe.Capabilities` of a CPU-only machine, or of one with TensorRT 11.4 and an H100."""
    import dataclasses

    from vsslrt.engine.probe import Capabilities, Check, CpuInfo, GpuInfo

    ok = Check(True, "ok")
    cpu_only = Capabilities(
        tensorrt_installed=Check(False, "package not installed"), tensorrt_loadable=Check(False, "not checked"),
        tensorrt_cuda=Check(False, "not checked"), tensorrt_version=None, cupy_installed=Check(False, "package not installed"),
        cuda_usable=Check(False, "not checked"), cupy_version=None, cuda_devices=(), driver_version=None,
        cuda_runtime_version=None, onnxruntime_version="1.32.0", ort_providers=("CPUExecutionProvider",),
        cpu=CpuInfo("cpu", 2, 2, "x86_64"),
    )
    if not with_trt:
        return cpu_only
    return dataclasses.replace(
        cpu_only, tensorrt_installed=ok, tensorrt_loadable=ok, tensorrt_cuda=ok, tensorrt_version="11.4.0.106",
        cupy_installed=ok, cuda_usable=ok, cupy_version="14.2.0",
        cuda_devices=(GpuInfo(0, "NVIDIA H100 80GB HBM3", "9.0", 80.0),),
    )
