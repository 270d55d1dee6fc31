"""Build TensorRT engines from ONNX files (TensorRT 11 semantics; 10.x supported where it differs).

The flow is NVIDIA's recommended one (engine-notes §1.1): parse by path so external weights
resolve, a strongly typed network, one optimisation profile for the dynamic batch, a workspace
limit, the builder optimisation level, and a timing cache kept beside the engines.

Precision lives in the ONNX graph. TensorRT 11 removed BuilderFlag.FP16 and 10.x deprecated it
in favour of strong typing, so this module never sets a precision flag: an fp16 engine is built
from the fp16 ONNX written by the export stage, and `precision` here is checked against the
graph rather than passed to TensorRT. The one precision-related switch is clearing TF32 for fp32
engines (TensorRT enables TF32 for fp32 layers by default). The engine inspector then reports the share of layers that
really run in fp16.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vsslrt.engine.cache import (
    PRECISIONS,
    BuildEnvironment,
    EngineCache,
    EngineKey,
    KeyChange,
    atomic_write_bytes,
    onnx_sha256,
    read_record,
)
from vsslrt.engine.trt_common import create_builder, create_runtime, load_tensorrt, make_logger, network_flags
from vsslrt.errors import EngineBuildError, InputError
from vsslrt.engine.probe import build_environment

MAX_OPTIMIZATION_LEVEL = 5


@dataclass(frozen=True)
class BatchProfile:
    """The batch range of the engine's single optimisation profile: min <= opt <= max."""

    min: int
    opt: int
    max: int

    @classmethod
    def parse(cls, text: str) -> BatchProfile:
        """Parse "min:opt:max" (e.g. "1:16:64"), as given to `--batch` on the command line."""
        parts = str(text).split(":")
        try:
            values = [int(p) for p in parts]
        except ValueError:
            values = []
        if len(parts) != 3 or len(values) != 3:
            raise InputError(
                f"batch profile: expected three integers 'min:opt:max', got {text!r}.", hint="for example --batch 1:16:64"
            )
        return cls(*values)

    def __post_init__(self) -> None:
        if not 1 <= self.min <= self.opt <= self.max:
            raise InputError(
                f"batch profile: expected 1 <= min <= opt <= max, got {self.min}:{self.opt}:{self.max}.",
                hint="for example --batch 1:16:64",
            )

    def __str__(self) -> str:
        return f"{self.min}:{self.opt}:{self.max}"

    def shapes(self, shape: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """(min, opt, max) shapes for an input whose first dimension is the batch."""
        rest = tuple(int(d) for d in shape[1:])
        return (self.min, *rest), (self.opt, *rest), (self.max, *rest)


@dataclass(frozen=True)
class BuildSettings:
    """What the builder is asked for (each field is part of the engine cache key).

    Args:
        profile: Batch range of the optimisation profile.
        precision: "fp32" or "fp16"; must match the ONNX graph's own precision.
        workspace_bytes: Scratch memory TensorRT may use for tactics. Defaults to 1 GiB.
        optimization_level: Builder optimisation level 0..5 (TensorRT's default is 3).
    """

    profile: BatchProfile
    precision: str = "fp32"
    workspace_bytes: int = 1 << 30
    optimization_level: int = 3

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise InputError(f"build: expected precision to be one of {', '.join(PRECISIONS)}, got {self.precision!r}.")
        if self.workspace_bytes <= 0:
            raise InputError(f"build: expected workspace_bytes to be > 0, got {self.workspace_bytes}.")
        if not 0 <= self.optimization_level <= MAX_OPTIMIZATION_LEVEL:
            raise InputError(
                f"build: expected optimization_level to be in 0..{MAX_OPTIMIZATION_LEVEL}, got {self.optimization_level}."
            )


@dataclass(frozen=True)
class EngineSummary:
    """What the engine inspector says about the built engine (goes into the manifest).

    `fp16_share` is the fraction of layers, among those whose output format the inspector
    reports, that produce fp16 tensors; None when the inspector gave no per-layer formats.
    """

    layers: int = 0
    fp16_layers: int = 0
    fp32_layers: int = 0
    other_layers: int = 0
    unknown_layers: int = 0
    fp16_share: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class BuildResult:
    """A serialized engine and the facts about its build."""

    plan: bytes
    summary: EngineSummary
    tensorrt_version: str
    network_flags: int
    profile_shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]
    timing_cache_path: Path | None
    build_seconds: float

    def info(self) -> dict[str, Any]:
        """JSON-ready facts for the manifest and the cache record."""
        return {
            "tensorrt_version": self.tensorrt_version,
            "network_flags": self.network_flags,
            "profile_shapes": {n: [list(s) for s in shapes] for n, shapes in self.profile_shapes.items()},
            "inspector": self.summary.to_dict(),
            "build_seconds": round(self.build_seconds, 3),
        }


def onnx_precision(onnx_path: str | os.PathLike[str]) -> str:
    """"int8" when the graph holds Q/DQ nodes (explicit quantization), "fp16" when it computes in float16
    (fp16 weights, values or casts), else "fp32"."""
    import onnx

    try:
        model = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError for a file that is not an ONNX model
        raise InputError(
            f"{onnx_path}: expected an ONNX model, got a file that does not parse ({type(exc).__name__}: {exc}).",
            hint="re-export the model",
        ) from exc
    half = onnx.TensorProto.FLOAT16
    graph = model.graph
    if any(node.op_type in ("QuantizeLinear", "DequantizeLinear") for node in graph.node):
        return "int8"
    if any(t.data_type == half for t in graph.initializer):
        return "fp16"
    values = list(graph.input) + list(graph.output) + list(graph.value_info)
    if any(v.type.tensor_type.elem_type == half for v in values):
        return "fp16"
    for node in graph.node:
        if node.op_type == "Cast" and any(a.name == "to" and a.i == half for a in node.attribute):
            return "fp16"
    return "fp32"


def build_serialized_engine(
    onnx_path: str | os.PathLike[str],
    settings: BuildSettings,
    *,
    timing_cache_path: str | os.PathLike[str] | None = None,
    trt: Any = None,
) -> BuildResult:
    """Parse an ONNX file and build a serialized engine.

    Args:
        onnx_path: The ONNX file; external data files must sit beside it.
        settings: Profile, precision, workspace and optimisation level.
        timing_cache_path: Timing cache to load (if the file exists) and to save, atomically,
            after the build. Defaults to no timing cache.
        trt: The tensorrt module. Defaults to importing it.

    Raises:
        BackendUnavailableError: TensorRT is missing, its libraries do not load, or CUDA is unusable.
        EngineBuildError: The parser rejects the model, the graph has no dynamic batch, its
            precision differs from `settings.precision`, or the build fails.
    """
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise InputError(f"{onnx_path}: expected an ONNX file, got a path that does not exist.")
    graph_precision = onnx_precision(onnx_path)
    if graph_precision != settings.precision:
        raise EngineBuildError(
            f"{onnx_path}: expected a {settings.precision} graph, got a {graph_precision} one.",
            hint="TensorRT takes precision from the ONNX (strong typing): build fp16 from the fp16 ONNX "
            "written by the export stage, and fp32 from the fp32 one",
        )
    trt = load_tensorrt(trt)
    logger = make_logger(trt)
    builder = create_builder(trt, logger)
    flags = network_flags(trt)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    # Parsing by path (not bytes) lets the parser find external weight files beside the model.
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise EngineBuildError(
            f"{onnx_path}: expected TensorRT's ONNX parser to accept the model, got {len(errors)} error(s): "
            + " | ".join(errors or ["(no message)"]),
            hint="check the opset and operators against TensorRT's ONNX support matrix; "
            "`polygraphy surgeon sanitize --fold-constants` often helps",
        )

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace_bytes)
    config.builder_optimization_level = settings.optimization_level
    if settings.precision == "fp32" and hasattr(trt.BuilderFlag, "TF32"):
        # TF32 (10-bit mantissa in convolutions and matrix products) is on by default for fp32
        # layers; an engine labelled fp32 computes in fp32, so it meets the fp32 parity gate.
        config.clear_flag(trt.BuilderFlag.TF32)
    # DETAILED keeps per-layer names and formats for the inspector summary.
    if hasattr(trt, "ProfilingVerbosity"):
        config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED

    cache_path = Path(timing_cache_path) if timing_cache_path is not None else None
    timing_cache = None
    if cache_path is not None:
        previous = cache_path.read_bytes() if cache_path.is_file() else b""
        timing_cache = config.create_timing_cache(previous)
        config.set_timing_cache(timing_cache, ignore_mismatch=False)

    profile_shapes = _batch_profile_shapes(network, settings.profile, onnx_path)
    profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in profile_shapes.items():
        profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(profile)

    start = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - start
    if serialized is None:
        raise EngineBuildError(
            f"{onnx_path}: expected TensorRT to build an engine, got no engine (see TensorRT's log above).",
            hint="try a larger --workspace or a smaller maximum batch",
        )
    plan = bytes(memoryview(serialized))
    if timing_cache is not None and cache_path is not None:
        atomic_write_bytes(cache_path, memoryview(timing_cache.serialize()))
    summary = inspect_engine(plan, profile_shapes, trt=trt, logger=logger)
    return BuildResult(
        plan=plan,
        summary=summary,
        tensorrt_version=str(trt.__version__),
        network_flags=flags,
        profile_shapes=profile_shapes,
        timing_cache_path=cache_path,
        build_seconds=seconds,
    )


def _batch_profile_shapes(network: Any, batch: BatchProfile, onnx_path: Path) -> dict[str, Any]:
    shapes = {}
    for index in range(network.num_inputs):
        tensor = network.get_input(index)
        shape = tuple(int(d) for d in tensor.shape)
        if not shape or shape[0] != -1 or any(d < 0 for d in shape[1:]):
            raise EngineBuildError(
                f"{onnx_path}: expected input '{tensor.name}' to have a dynamic batch dimension and fixed "
                f"other dimensions, got shape {shape}.",
                hint="export with a dynamic batch axis only (vsslrt build does this)",
            )
        shapes[tensor.name] = batch.shapes(shape)
    return shapes


def inspect_engine(plan: bytes, profile_shapes: Mapping[str, Any], *, trt: Any, logger: Any = None) -> EngineSummary:
    """Count fp16 layers with the engine inspector (needs a live CUDA context, as after a build).

    With a dynamic batch the inspector reports "N/A due to dynamic shapes" for formats unless it
    has an execution context with concrete input shapes, so the opt shapes are set first.
    """
    if not hasattr(trt, "LayerInformationFormat"):
        return EngineSummary()
    runtime = create_runtime(trt, logger or make_logger(trt))
    engine = runtime.deserialize_cuda_engine(plan)
    if engine is None:
        raise EngineBuildError("built engine: expected TensorRT to deserialize the plan it just built, got None.")
    inspector = engine.create_engine_inspector()
    context = engine.create_execution_context()
    for name, (_lo, opt, _hi) in profile_shapes.items():
        context.set_input_shape(name, opt)
    inspector.execution_context = context
    info = json.loads(inspector.get_engine_information(trt.LayerInformationFormat.JSON))
    return summarize_layers(info.get("Layers", []))


def summarize_layers(layers: list[Any]) -> EngineSummary:
    """Classify inspector layers by the data type of their outputs."""
    counts = {"fp16": 0, "fp32": 0, "other": 0, "unknown": 0}
    for layer in layers:
        if not isinstance(layer, Mapping):  # ProfilingVerbosity below DETAILED gives bare names
            counts["unknown"] += 1
            continue
        formats = " ".join(str(t.get("Format/Datatype", "")) for t in layer.get("Outputs", []) if isinstance(t, Mapping))
        counts[_precision_of(formats)] += 1
    known = counts["fp16"] + counts["fp32"] + counts["other"]
    return EngineSummary(
        layers=len(layers),
        fp16_layers=counts["fp16"],
        fp32_layers=counts["fp32"],
        other_layers=counts["other"],
        unknown_layers=counts["unknown"],
        fp16_share=(counts["fp16"] / known) if known else None,
    )


def _precision_of(formats: str) -> str:
    text = formats.lower()
    if "fp16" in text or "half" in text:
        return "fp16"
    if "fp32" in text or "float" in text:
        return "fp32"
    if any(tag in text for tag in ("int8", "int32", "int64", "bool", "bf16", "fp8", "uint8", "int4", "fp4")):
        return "other"
    return "unknown"


# -- cached builds -------------------------------------------------------------------------


@dataclass(frozen=True)
class CachedBuild:
    """Outcome of `build_engine`: where the engine is, under which key, and whether it was reused."""

    plan_path: Path
    key: EngineKey
    reused: bool
    info: dict[str, Any]
    replaced: list[tuple[Path, list[KeyChange]]] = field(default_factory=list)


def build_engine(
    onnx_path: str | os.PathLike[str],
    settings: BuildSettings,
    cache: EngineCache,
    *,
    name: str,
    environment: BuildEnvironment | None = None,
    trt: Any = None,
) -> CachedBuild:
    """Return the cached engine for this ONNX and these settings, building it only when needed.

    Args:
        onnx_path: The ONNX file.
        settings: Build settings (part of the key).
        cache: Where engines, their keys and the timing cache live.
        name: Model part name used in file names ("visual", "audio", "model").
        environment: TensorRT version, GPU and driver for the key. Defaults to probing them.
        trt: The tensorrt module. Defaults to importing it.

    Returns:
        A CachedBuild; `replaced` lists stored engines of the same name that did not match and
        what changed for each (the reason for a rebuild).
    """
    trt = load_tensorrt(trt)
    if environment is None:

        environment = build_environment(trt=trt)
    key = EngineKey.create(
        onnx_sha256=onnx_sha256(onnx_path),
        precision=settings.precision,
        profile=str(settings.profile),
        builder_optimization_level=settings.optimization_level,
        workspace_bytes=settings.workspace_bytes,
        environment=environment,
    )
    found = cache.lookup(name, key)
    if found is not None:
        return CachedBuild(found, key, reused=True, info=dict(read_record(found).get("info", {})))
    replaced = cache.stale_entries(name, key)
    result = build_serialized_engine(
        onnx_path, settings, timing_cache_path=cache.timing_cache_path(environment), trt=trt
    )
    info = result.info()
    plan_path = cache.store(name, key, result.plan, info=info)
    return CachedBuild(plan_path, key, reused=False, info=info, replaced=replaced)
