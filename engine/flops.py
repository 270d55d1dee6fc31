"""Model FLOPs counted from an ONNX graph, and the machine's measured matmul peak.

A latency report states achieved GFLOP/s (model GFLOPs per sample x samples per second) next to
the peak this machine reaches on a large fp32 matrix product through the same kind of library,
so a reader sees how close a run is to the hardware limit.

Counting convention: 2 FLOPs per multiply-accumulate of Conv, ConvTranspose, Gemm and MatMul
(which hold >99% of a ResNet's arithmetic); biases, normalisation, activations and pooling are
not counted.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vsslrt.errors import InputError

COUNTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


@dataclass(frozen=True)
class FlopCount:
    """FLOPs of one forward pass at `batch` samples, total and per operator type."""

    total: int
    batch: int
    by_op: dict[str, int]

    @property
    def gflops_per_sample(self) -> float:
        return self.total / self.batch / 1e9


def count_flops(model: str | os.PathLike[str] | Any, *, batch: int = 1) -> FlopCount:
    """Count the FLOPs of an ONNX model with its dynamic batch fixed to `batch`.

    Args:
        model: Path to an .onnx file or an onnx.ModelProto. Not modified.
        batch: Concrete batch size for shape inference. Defaults to 1.

    Raises:
        InputError: A dimension other than the leading batch is symbolic, or shape inference
            cannot determine the shape of a counted operator's tensors.
    """
    import onnx

    if isinstance(model, (str, os.PathLike)):
        proto = onnx.load(str(Path(model)))
        subject = str(model)
    else:
        proto = onnx.ModelProto()
        proto.CopyFrom(model)
        subject = proto.graph.name or "model"
    initializer_names = {t.name for t in proto.graph.initializer}
    for value in proto.graph.input:
        if value.name in initializer_names:
            continue
        dims = value.type.tensor_type.shape.dim
        for index, dim in enumerate(dims):
            if dim.HasField("dim_value"):
                continue
            if index != 0:
                raise InputError(
                    f"{subject}: expected only the batch dimension of input '{value.name}' to be symbolic, "
                    f"got dimension {index} = {dim.dim_param or '?'}.",
                )
            dim.Clear()
            dim.dim_value = batch
    inferred = onnx.shape_inference.infer_shapes(proto, strict_mode=True, data_prop=True)
    shapes = _known_shapes(inferred.graph)

    by_op: dict[str, int] = {}
    for node in inferred.graph.node:
        if node.op_type not in COUNTED_OPS:
            continue
        flops = _node_flops(node, shapes, subject)
        by_op[node.op_type] = by_op.get(node.op_type, 0) + flops
    return FlopCount(total=sum(by_op.values()), batch=batch, by_op=by_op)


def _known_shapes(graph: Any) -> dict[str, tuple[int, ...]]:
    shapes = {t.name: tuple(int(d) for d in t.dims) for t in graph.initializer}
    for value in [*graph.input, *graph.output, *graph.value_info]:
        dims = value.type.tensor_type.shape.dim
        if value.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in dims):
            shapes[value.name] = tuple(int(d.dim_value) for d in dims)
    return shapes


def _node_flops(node: Any, shapes: dict[str, tuple[int, ...]], subject: str) -> int:
    def shape_of(name: str) -> tuple[int, ...]:
        if name not in shapes:
            raise InputError(
                f"{subject}: expected shape inference to give the shape of '{name}' "
                f"({node.op_type} node '{node.name}'), got none.",
                hint="run onnx.shape_inference on the model or simplify it (onnxslim) first",
            )
        return shapes[name]

    if node.op_type == "Conv":
        # Each output element sums over (C / group) x kernel inputs: W is (M, C/group, k...).
        out, weight = shape_of(node.output[0]), shape_of(node.input[1])
        return 2 * _prod(out) * _prod(weight[1:])
    if node.op_type == "ConvTranspose":
        # Each input element scatters into (M / group) x kernel outputs: W is (C, M/group, k...).
        inp, weight = shape_of(node.input[0]), shape_of(node.input[1])
        return 2 * _prod(inp) * _prod(weight[1:])
    if node.op_type == "Gemm":
        a, out = shape_of(node.input[0]), shape_of(node.output[0])
        trans_a = any(attr.name == "transA" and attr.i for attr in node.attribute)
        k = a[0] if trans_a else a[1]
        return 2 * _prod(out) * k
    # MatMul: numpy semantics; the contracted length is A's last dimension.
    a, out = shape_of(node.input[0]), shape_of(node.output[0])
    return 2 * _prod(out) * a[-1]


def _prod(dims: tuple[int, ...]) -> int:
    result = 1
    for d in dims:
        result *= int(d)
    return result


@dataclass(frozen=True)
class PeakMeasurement:
    """A measured matmul peak: wall-clock GFLOP/s and GFLOP per process CPU second.

    On a machine shared with other work, the wall rate moves with the load; the rate per CPU
    second (all threads of this process) says how fast the library computes on the cores it gets.
    """

    library: str
    size: int
    gflops: float
    gflops_per_cpu_second: float


def measure_peak(*, library: str = "numpy", size: int = 4096, repeats: int = 3) -> PeakMeasurement:
    """Time a size x size fp32 matrix product (2 * size^3 FLOPs) `repeats` times after a warm-up.

    Args:
        library: "numpy" (CPU, through NumPy's BLAS) or "cupy" (GPU, synchronised). Defaults to "numpy".
        size: Matrix side. Defaults to 4096 (large enough to reach BLAS peak on a CPU).
        repeats: Timed runs after one untimed warm-up run; the fastest gives `gflops`. Defaults to 3.
    """
    if library not in ("numpy", "cupy"):
        raise InputError(f"peak: expected library to be numpy or cupy, got {library!r}.")
    if size < 1 or repeats < 1:
        raise InputError(f"peak: expected size >= 1 and repeats >= 1, got {size} and {repeats}.")
    if library == "cupy":
        import cupy as xp

        sync = xp.cuda.get_current_stream().synchronize
    else:
        xp, sync = np, (lambda: None)
    rng = np.random.default_rng(0)
    a = xp.asarray(rng.standard_normal((size, size), dtype=np.float32))
    b = xp.asarray(rng.standard_normal((size, size), dtype=np.float32))
    out = xp.empty((size, size), dtype=np.float32)
    xp.matmul(a, b, out=out)
    sync()
    flops = 2.0 * size**3
    best = float("inf")
    cpu_start = time.process_time()
    for _ in range(repeats):
        start = time.perf_counter()
        xp.matmul(a, b, out=out)
        sync()
        best = min(best, time.perf_counter() - start)
    cpu = max(time.process_time() - cpu_start, 1e-9)
    return PeakMeasurement(library, size, flops / best / 1e9, flops * repeats / cpu / 1e9)


def measure_peak_gflops(*, library: str = "numpy", size: int = 4096, repeats: int = 3) -> float:
    """Best wall-clock GFLOP/s of a size x size fp32 matrix product (see `measure_peak`)."""
    return measure_peak(library=library, size=size, repeats=repeats).gflops
