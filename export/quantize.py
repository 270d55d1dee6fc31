"""Static int8 quantization of an encoder graph to QDQ, with ONNX Runtime's quantizer.

The result is an ONNX graph with QuantizeLinear/DequantizeLinear pairs around the quantized
operators (the QDQ format): ONNX Runtime fuses them into integer kernels on the CPU, and TensorRT
builds the same graph, unchanged, as an explicitly quantized engine in a strongly typed network
(TensorRT 11 has no implicit int8 calibrator any more: the scales must be in the graph).

Two schemes, because the two runtimes want different zero points:

* ``ort-cpu``: activations uint8 asymmetric per tensor, weights int8 symmetric per output channel
  with ``reduce_range`` (7-bit weights). ONNX Runtime's fastest x86 path is u8 x s8; without VNNI
  (AVX2 only) its u8 x s8 dot products saturate in 16 bits, which 7-bit weights avoid (measured on
  the demo visual encoder: worst embedding cosine to fp32 0.968 with 8-bit weights, 0.998 with 7).
* ``tensorrt``: activations and weights int8 symmetric (zero point 0; TensorRT rejects other zero
  points: "TRT only supports symmetric quantization"), per-channel weights, full 8-bit range, Q/DQ
  only at the inputs of Conv/Gemm/MatMul (where TensorRT fuses them into int8 kernels).

What stays fp32 in both: the input normalisation (everything before the first weighted operator),
everything from a global pooling on when one comes before the projection (an audio encoder's pooled
vector, which costs no multiply-adds and which every map is computed from), and everything from the
last weighted operator on (the projection to the embedding, the L2 normalisation, the stacking of the
K embeddings). On the demo models, keeping the projection in fp32 raised the worst embedding cosine
of the audio encoder from 0.977 to 0.996, and the pooled tail demo-pos's worst audio cosine from 0.965
to 0.984. The stem (the first weighted operator, with its activation and pooling) is quantized: on
the demos an fp32 stem moved the largest headline delta by about 0.1 point and the argmax agreement
by 1-2 points either way (docs/int8.md), but it cost the int8 EZ-VSL encoders 6-23 % on the CPU (its
fp32 convolution reads 3 or 1 input channels), and a quantized ResNet stem's MaxPool runs in ONNX
Runtime's NHWC uint8 layout with the convolutions around it. ``fp32_stem`` keeps it fp32 (then
`engine.ort_runner` keeps ONNX Runtime from moving the first QuantizeLinear back across the MaxPool,
which would run it on the slow NCHW uint8 kernel).
`keep_fp32` adds more nodes (names from the graph) when the accuracy gate shows a model needs it.

Calibration methods: ``minmax`` (the observed range), ``entropy`` (KL-divergence threshold) and
``percentile`` (the 99.999th percentile of the histogram; the default: on the demo models it is the
only one that keeps every headline metric within a point of fp32, see docs/int8.md).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vsslrt.errors import EngineBuildError, InputError, missing_extra

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
SCHEMES = ("ort-cpu", "tensorrt")
WEIGHTED_OPS = ("Conv", "Gemm", "MatMul")
FP32_RULE = "input normalisation before the first weighted operator; from a global pooling or the projection on"
"""What `kept_fp32_nodes` keeps, recorded with each int8 graph: a graph made by another rule is not reused."""
_METHOD_NAMES = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}


@dataclass(frozen=True)
class QuantizedGraph:
    """One quantized graph and how it was made (recorded in the manifest)."""

    path: Path
    scheme: str
    method: str
    samples: int
    batch: int
    fp32_nodes: tuple[str, ...]
    quantized_ops: int
    scheme_detail: dict[str, str] = field(default_factory=dict)


def scheme_detail(scheme: str) -> dict[str, str]:
    """What a scheme means, in words, for the manifest and the docs."""
    if scheme == "ort-cpu":
        return {"activations": "uint8 asymmetric, per tensor", "weights": "int8 symmetric, per channel, 7-bit (reduce_range)",
                "format": "QDQ"}
    return {"activations": "int8 symmetric (zero point 0), per tensor", "weights": "int8 symmetric, per channel",
            "format": "QDQ at the inputs of Conv/Gemm/MatMul"}


def kept_fp32_nodes(model, keep_fp32: Sequence[str] = (), *, fp32_stem: bool = False) -> tuple[str, ...]:
    """Names of the nodes that stay fp32: everything before the first weighted operator (the input
    normalisation), from a global pooling before the last weighted operator on (else from the last
    weighted operator on), `keep_fp32`, and with `fp32_stem` the stem: everything before the second
    weighted operator (the first one, its activation and pooling). See the module docstring.

    Raises:
        InputError: A name in `keep_fp32` is not a node of the graph, or the graph has no weighted operator.
    """
    nodes = list(model.graph.node)
    initializers = {t.name for t in model.graph.initializer}
    weighted = [i for i, n in enumerate(nodes) if n.op_type in WEIGHTED_OPS and any(x in initializers for x in n.input[1:])]
    if not weighted:
        raise InputError(f"graph {model.graph.name!r}: expected Conv, Gemm or MatMul operators with weights to "
                         "quantize, got none.", hint="int8 applies to convolutional or linear encoders")
    first, last = weighted[0], weighted[-1]
    head_end = (weighted[1] if len(weighted) > 1 else first + 1) if fp32_stem else first
    # The embedding-level tail starts at the global pooling when one comes before the projection.
    tail = next((i for i in range(first + 1, last) if _global_pool(nodes[i], model.graph.initializer)), last)
    names = [n.name for i, n in enumerate(nodes) if i < head_end or i >= tail]
    unknown = sorted(set(keep_fp32) - {n.name for n in nodes})
    if unknown:
        raise InputError(f"keep_fp32: expected node names of graph {model.graph.name!r}, got {', '.join(unknown[:3])}.",
                         hint="list the graph's nodes with onnx.load(path).graph.node")
    return tuple(dict.fromkeys([*names, *keep_fp32]))


def node_names(path: str | os.PathLike[str]) -> set[str]:
    """The node names of a graph (what `keep_fp32` may name)."""
    import onnx

    return {n.name for n in onnx.load(str(path), load_external_data=False).graph.node}


def _global_pool(node, initializers) -> bool:
    """A pooling over both spatial axes of an NCHW tensor (GlobalMaxPool, ReduceMax over axes 2 and 3, ...)."""
    from onnx import numpy_helper

    if node.op_type in ("GlobalAveragePool", "GlobalMaxPool"):
        return True
    if node.op_type not in ("ReduceMax", "ReduceMean"):
        return False
    axes = next((list(a.ints) for a in node.attribute if a.name == "axes"), None)
    if axes is None and len(node.input) > 1:  # opset 18+: the axes are an input
        tensor = next((t for t in initializers if t.name == node.input[1]), None)
        axes = None if tensor is None else numpy_helper.to_array(tensor).ravel().tolist()
    return axes is not None and {int(a) % 4 for a in axes} == {2, 3}


def quantize_graph(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    inputs: np.ndarray,
    *,
    input_name: str,
    scheme: str = "ort-cpu",
    method: str = "percentile",
    batch: int = 16,
    keep_fp32: Sequence[str] = (),
    fp32_stem: bool = False,
    frontend: str | None = None,
) -> QuantizedGraph:
    """Calibrate `source` on `inputs` and write its QDQ int8 graph to `target` (atomically).

    Args:
        source: The fp32 encoder graph.
        target: The int8 graph to write.
        inputs: Calibration inputs (N, ...) float32, in the graph's input layout (what the front-end produced).
        input_name: The graph input they feed ("image" or "audio").
        scheme: "ort-cpu" or "tensorrt" (see the module docstring).
        method: "minmax", "entropy" or "percentile".
        batch: Calibration batch size (at most N).
        keep_fp32: More node names to keep in fp32.
        fp32_stem: Keep the stem in fp32 too (the module docstring).
        frontend: The front-end the inputs should come from, named in the shape error.

    Raises:
        InputError: Bad scheme or method, a calibration set smaller than the batch, or inputs whose
            shape is not the graph's (another front-end).
        EngineBuildError: The quantizer failed.
    """
    import onnx

    if scheme not in SCHEMES:
        raise InputError(f"int8 scheme: expected one of {', '.join(SCHEMES)}, got {scheme!r}.")
    if method not in CALIBRATION_METHODS:
        raise InputError(f"calibration method: expected one of {', '.join(CALIBRATION_METHODS)}, got {method!r}.",
                         hint="use --calib-method percentile (the default), minmax or entropy")
    if batch < 1:
        raise InputError(f"calibration batch: expected an integer >= 1, got {batch}.")
    inputs = np.asarray(inputs)
    if inputs.ndim < 1 or len(inputs) < batch:
        raise InputError(f"calibration set for {input_name!r}: expected at least one batch of {batch} inputs, got "
                         f"{0 if inputs.ndim < 1 else len(inputs)}.",
                         hint="raise --calib-samples or lower the calibration batch")
    model = onnx.load(str(source))
    _check_inputs(model, inputs, input_name, frontend, source)
    excluded = kept_fp32_nodes(model, keep_fp32, fp32_stem=fp32_stem)
    try:
        from onnxruntime import quantization as q
    except ImportError:
        raise missing_extra("onnxruntime", "cpu", "quantize graphs to int8") from None

    options: dict = {"ActivationSymmetric": scheme == "tensorrt", "WeightSymmetric": True}
    op_types = list(WEIGHTED_OPS) if scheme == "tensorrt" else None
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    reader = _Reader(input_name, inputs.astype(np.float32, copy=False), batch)
    with tempfile.TemporaryDirectory(prefix=".quantize-", dir=target.parent) as tmp:
        staged = Path(tmp) / "shaped.onnx"
        out = Path(tmp) / target.name
        try:
            # The quantizer logs advice and progress; the library stays silent (only the CLI prints).
            with _quiet():
                onnx.save_model(onnx.shape_inference.infer_shapes(model), str(staged))
                q.quantize_static(
                    str(staged), str(out), reader, quant_format=q.QuantFormat.QDQ, per_channel=True,
                    reduce_range=scheme == "ort-cpu",
                    activation_type=q.QuantType.QInt8 if scheme == "tensorrt" else q.QuantType.QUInt8,
                    weight_type=q.QuantType.QInt8, calibrate_method=getattr(q.CalibrationMethod, _METHOD_NAMES[method]),
                    op_types_to_quantize=op_types, nodes_to_exclude=list(excluded), extra_options=options,
                    calibration_providers=["CPUExecutionProvider"],
                )
        except Exception as exc:  # the quantizer raises many unrelated types
            raise EngineBuildError(f"{source}: expected ONNX Runtime's quantizer to succeed, got "
                                   f"{type(exc).__name__}: {str(exc)[:300]}.",
                                   hint="rerun with VSSLRT_DEBUG=1 for the traceback") from exc
        quantized = onnx.load(str(out))
        onnx.checker.check_model(quantized, full_check=True)
        out.replace(target)
    ops = sum(1 for n in quantized.graph.node if n.op_type in WEIGHTED_OPS and n.name not in excluded)
    return QuantizedGraph(target, scheme, method, int(len(inputs)), int(batch), excluded, ops, scheme_detail(scheme))


def graph_scheme(path: str | os.PathLike[str]) -> str | None:
    """The scheme of a QDQ graph from its zero points: "tensorrt" (all int8 and zero), "ort-cpu", or None
    when the graph has no QuantizeLinear."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    inits = {t.name: t for t in model.graph.initializer}
    quant = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    if not quant:
        return None
    for node in quant:
        if len(node.input) < 3 or node.input[2] not in inits:
            return "ort-cpu"
        zero = inits[node.input[2]]
        if zero.data_type != onnx.TensorProto.INT8 or np.any(numpy_helper.to_array(zero) != 0):
            return "ort-cpu"
    return "tensorrt"


def _check_inputs(model, inputs: np.ndarray, name: str, frontend: str | None, source) -> None:
    graph_inputs = {i.name: i for i in model.graph.input}
    if name not in graph_inputs:
        raise InputError(f"{source}: expected a graph input {name!r}, got {', '.join(graph_inputs)}.")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in graph_inputs[name].type.tensor_type.shape.dim]
    want = tuple(dims[1:])
    got = tuple(int(d) for d in inputs.shape[1:])
    if len(want) != len(got) or any(w is not None and w != g for w, g in zip(want, got)):
        origin = f"the {frontend} front-end" if frontend else "the model's front-end"
        raise InputError(
            f"calibration set for {name!r}: expected inputs of shape (N, {', '.join(str(w) for w in want)}) from "
            f"{origin}, got (N, {', '.join(map(str, got))}).",
            hint="calibrate with inputs prepared by this model's front-end (vsslrt prepares them from a dataset)",
        )
    if inputs.dtype != np.float32 or not np.isfinite(inputs).all():
        raise InputError(f"calibration set for {name!r}: expected finite float32 inputs, got {inputs.dtype} "
                         f"{'with non-finite values' if inputs.dtype.kind == 'f' else ''}".rstrip() + ".")


class _Reader:
    """ONNX Runtime's CalibrationDataReader protocol over consecutive batches of one array."""

    def __init__(self, name: str, data: np.ndarray, batch: int) -> None:
        # Whole batches only: the quantizer's histogram collectors assume a fixed batch size.
        self._batches = [data[i : i + batch] for i in range(0, len(data) - batch + 1, batch)]
        self._name = name
        self._next = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._next >= len(self._batches):
            return None
        self._next += 1
        return {self._name: np.ascontiguousarray(self._batches[self._next - 1])}

    def rewind(self) -> None:
        self._next = 0


@contextlib.contextmanager
def _quiet():
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)
