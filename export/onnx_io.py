"""ONNX export, validation and the fp16 transform.

* Export uses ``torch.onnx.export`` with the torch.export-based exporter (the default since torch
  2.9) and a named dynamic batch dimension ``"batch"``; weights stay inside the .onnx file (a
  ResNet-18 pair is ~90 MB, far below protobuf's 2 GB limit), so each graph is one self-contained
  file that ONNX Runtime and TensorRT load by path.
* ``onnx.checker.check_model(full_check=True)`` runs on every written graph.
* fp16 (TensorRT 11 is strongly typed: the precision must be in the graph) comes from
  ``onnxconverter_common.float16.convert_float_to_float16(keep_io_types=True)``. The nodes that
  ``vsslrt.export.tail`` creates stay fp32; with the torch 2.14 exporter these are, per encoder,
  ReduceL2 (the norm), Clip (its 1e-12 floor), Expand with the Concat that builds its shape, Div,
  and the Unsqueeze/Concat that stacks the K embeddings; in the fused graph also the head's
  Unsqueeze, Mul, ReduceSum, ReduceMean, Mul and Add; in the object graph Abs and ReduceMean.
  Everything before them (convolutions, BN folded into them, ReLU, pooling, the projections) is
  fp16. The exact node names are recorded per graph in the manifest (``fp32_nodes``). Two defects
  of the converter are repaired and the result is verified: (1) when a kept-fp32 node produces a
  graph output, the converter appends a Cast to fp16, so the output would be fp16 despite
  keep_io_types; (2) constants feeding kept-fp32 nodes (the 1e-12 floor) are rounded through fp16
  and cast back (1e-12 becomes 1e-7).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import onnx
from onnx import TensorProto, numpy_helper

from vsslrt.errors import EngineBuildError
from vsslrt.export.tail import FP32_TAIL_CLASSES

MAX_BATCH = 4096  # upper bound of the dynamic batch dimension in the exported graphs
_HIERARCHY_KEY = "pkg.torch.onnx.class_hierarchy"
_KEEP_METADATA = ("namespace",)


def export_module(
    module,
    example_inputs: Sequence,
    path: str | Path,
    input_names: Sequence[str],
    output_names: Sequence[str],
    opset: int | None = None,
) -> tuple[onnx.ModelProto, tuple[str, ...]]:
    """Export ``module`` with a dynamic batch on every input; write ``path`` (weights inside).

    Returns:
        The model as written, and the names of its fp32-tail nodes (see ``fp32_tail_nodes``).

    Raises:
        EngineBuildError: the exporter failed or produced an invalid graph.
    """
    import torch

    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    dynamic = {name: {0: batch} for name in _forward_arg_names(module, len(example_inputs))}
    try:
        # The exporter reports progress on stdout and warns about internal details; the library
        # stays silent (the CLI is the only place that prints).
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                module.eval(),
                tuple(example_inputs),
                input_names=list(input_names),
                output_names=list(output_names),
                opset_version=opset,
                dynamo=True,
                dynamic_shapes=dynamic,
                external_data=False,
                verbose=False,
            )
    except Exception as exc:  # the exporter raises many unrelated types
        raise EngineBuildError(
            f"{Path(path).name}: expected torch.onnx.export to succeed, got {type(exc).__name__}: {str(exc)[:300]}.",
            hint="rerun with VSSLRT_DEBUG=1 for the traceback",
        ) from exc
    model = program.model_proto
    tail = fp32_tail_nodes(model)
    strip_node_metadata(model)
    save_model(model, path)
    check_model(path)
    return model, tail


def _forward_arg_names(module, count: int) -> list[str]:
    import inspect

    params = [p for p in inspect.signature(module.forward).parameters.values() if p.kind == p.POSITIONAL_OR_KEYWORD]
    return [p.name for p in params[:count]]


def fp32_tail_nodes(model: onnx.ModelProto) -> tuple[str, ...]:
    """Names of the nodes the exporter created inside the fp32-tail modules (normalisation, head)."""
    names = []
    for node in model.graph.node:
        for prop in node.metadata_props:
            if prop.key == _HIERARCHY_KEY and any(f".{cls}'" in prop.value for cls in FP32_TAIL_CLASSES):
                names.append(node.name)
                break
    return tuple(names)


def strip_node_metadata(model: onnx.ModelProto) -> None:
    """Drop per-node stack traces and FX dumps (local paths, ~1 kB per node); keep the namespace."""
    for node in model.graph.node:
        keep = [(p.key, p.value) for p in node.metadata_props if p.key in _KEEP_METADATA]
        del node.metadata_props[:]
        for key, value in keep:
            node.metadata_props.add(key=key, value=value)


def save_model(model: onnx.ModelProto, path: str | Path) -> None:
    """Write a self-contained .onnx file (no external data) via a temp file and a rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    onnx.save_model(model, tmp, save_as_external_data=False)
    tmp.replace(path)


def check_model(path: str | Path) -> None:
    """``onnx.checker`` with full shape inference; failures become EngineBuildError."""
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise EngineBuildError(
            f"{Path(path).name}: expected a valid ONNX graph, got a checker error: {str(exc)[:300]}."
        ) from exc


def convert_to_fp16(model: onnx.ModelProto, keep_fp32: Iterable[str]) -> onnx.ModelProto:
    """fp16 copy of ``model``: fp32 inputs/outputs, nodes in ``keep_fp32`` computed in fp32.

    Raises:
        EngineBuildError: the result still has an fp16 graph input/output or an fp16 tensor
            entering or leaving a kept node.
    """
    from onnxconverter_common import float16

    keep = set(keep_fp32)
    original = onnx.ModelProto()
    original.CopyFrom(model)
    converted = onnx.ModelProto()
    converted.CopyFrom(model)
    with warnings.catch_warnings():
        # "the float32 number ... will be truncated": expected for tiny weights; the fp32 tail's
        # constants are restored below.
        warnings.simplefilter("ignore", UserWarning)
        converted = float16.convert_float_to_float16(converted, keep_io_types=True, node_block_list=sorted(keep))
    _restore_fp32_outputs(converted, keep)
    _restore_fp32_constants(converted, original)
    verify_fp16(converted, keep)
    return converted


def _producers(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    return {out: node for node in graph.node for out in node.output}


def _restore_fp32_outputs(model: onnx.ModelProto, keep: set[str]) -> None:
    graph = model.graph
    producers = _producers(graph)
    for out in graph.output:
        cast = producers.get(out.name)
        if cast is None or cast.op_type != "Cast" or _cast_to(cast) != TensorProto.FLOAT16:
            continue
        source = producers.get(cast.input[0])
        if source is None or source.name not in keep:
            continue
        # Rewire: the kept-fp32 producer writes the graph output directly; drop the Cast.
        source.output[list(source.output).index(cast.input[0])] = out.name
        graph.node.remove(cast)
        _drop_value_info(graph, {cast.input[0], out.name})
        out.type.tensor_type.elem_type = TensorProto.FLOAT


def _restore_fp32_constants(model: onnx.ModelProto, original: onnx.ModelProto) -> None:
    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    original_values = {t.name: numpy_helper.to_array(t) for t in original.graph.initializer}
    for node in original.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            original_values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    for cast in list(graph.node):
        if cast.op_type != "Cast" or _cast_to(cast) != TensorProto.FLOAT:
            continue
        source = cast.input[0]
        is_fp16_init = source in initializers and initializers[source].data_type == TensorProto.FLOAT16
        is_fp16_const = any(n.op_type == "Constant" and source in n.output for n in graph.node)
        if not (is_fp16_init or is_fp16_const) or source not in original_values:
            continue
        value = original_values[source]
        if value.dtype.kind != "f":
            continue
        graph.initializer.append(numpy_helper.from_array(value.astype("float32"), name=cast.output[0]))
        graph.node.remove(cast)
        _drop_value_info(graph, {cast.output[0]})
    _remove_unused(graph)


def _cast_to(node: onnx.NodeProto) -> int | None:
    for attr in node.attribute:
        if attr.name == "to":
            return attr.i
    return None


def _drop_value_info(graph: onnx.GraphProto, names: set[str]) -> None:
    for info in [v for v in graph.value_info if v.name in names]:
        graph.value_info.remove(info)


def _remove_unused(graph: onnx.GraphProto) -> None:
    """Remove initializers and Constant nodes that nothing reads any more."""
    while True:
        used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
        dead_nodes = [n for n in graph.node if n.op_type == "Constant" and not (set(n.output) & used)]
        for node in dead_nodes:
            graph.node.remove(node)
        dead_inits = [t for t in graph.initializer if t.name not in used]
        for tensor in dead_inits:
            graph.initializer.remove(tensor)
        if not dead_nodes and not dead_inits:
            return


def tensor_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every tensor of the graph, after shape inference."""
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    graph = inferred.graph
    types = {t.name: t.data_type for t in graph.initializer}
    for info in list(graph.value_info) + list(graph.input) + list(graph.output):
        types[info.name] = info.type.tensor_type.elem_type
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            types[node.output[0]] = node.attribute[0].t.data_type
    return types


def verify_fp16(model: onnx.ModelProto, keep: set[str]) -> None:
    """Check the fp16 contract: fp32 graph I/O, no fp16 tensor in or out of a kept node."""
    types = tensor_types(model)
    for value in list(model.graph.input) + list(model.graph.output):
        if value.type.tensor_type.elem_type != TensorProto.FLOAT:
            raise EngineBuildError(
                f"fp16 graph: expected graph input/output {value.name!r} to stay float32, "
                f"got {TensorProto.DataType.Name(value.type.tensor_type.elem_type)}."
            )
    names = {n.name for n in model.graph.node}
    missing = sorted(keep - names)
    if missing:
        raise EngineBuildError(f"fp16 graph: expected kept-fp32 nodes {missing[:3]} to exist, got them removed.")
    for node in model.graph.node:
        if node.name not in keep:
            continue
        for tensor in list(node.input) + list(node.output):
            if tensor and types.get(tensor) == TensorProto.FLOAT16:
                raise EngineBuildError(
                    f"fp16 graph: expected node {node.name} ({node.op_type}) to run in float32, "
                    f"got float16 tensor {tensor!r}."
                )


def compose_fused(
    visual: onnx.ModelProto,
    audio: onnx.ModelProto,
    scale: float,
    offset: float,
    visual_output: str = "visual",
    audio_output: str = "audio_embedding",
    map_output: str = "map",
) -> tuple[onnx.ModelProto, tuple[str, ...]]:
    """The fused graph (image, audio) -> map, built from the two encoder graphs plus the head.

    The encoders are copied unchanged (their tensors prefixed ``visual/`` and ``audio/``; the
    graph inputs keep their names), then the head is appended in fp32:
    map = scale * mean_k sum_c visual * audio + offset. Composing instead of tracing again makes the
    fused graph the split graphs plus the head by construction, and halves export time.

    Returns:
        The model and the names of the head nodes (fp32 in every precision).
    """
    from onnx import compose, helper

    parts = []
    for proto, prefix in ((visual, "visual/"), (audio, "audio/")):
        renamed = compose.add_prefix(proto, prefix, rename_inputs=False)
        parts.append(renamed)
    vis, aud = parts
    opset = next(o.version for o in visual.opset_import if o.domain in ("", "ai.onnx"))
    v_out, a_out = "visual/" + visual_output, "audio/" + audio_output

    def const(name: str, values, dtype=TensorProto.INT64) -> onnx.TensorProto:
        return helper.make_tensor(name, dtype, [len(values)], values)

    initializers = [
        const("head/axes_hw", [3, 4]),
        const("head/axis_c", [2]),
        const("head/axis_k", [1]),
        helper.make_tensor("head/scale", TensorProto.FLOAT, [], [float(scale)]),
        helper.make_tensor("head/offset", TensorProto.FLOAT, [], [float(offset)]),
    ]

    def reduce(op: str, data: str, axes: str, axes_values: list[int], out: str) -> onnx.NodeProto:
        # ReduceSum takes axes as an input from opset 13, ReduceMean from opset 18.
        takes_input = opset >= (13 if op == "ReduceSum" else 18)
        if takes_input:
            return helper.make_node(op, [data, axes], [out], name=f"head/{op}", keepdims=0)
        return helper.make_node(op, [data], [out], name=f"head/{op}", keepdims=0, axes=axes_values)

    head = [
        helper.make_node("Unsqueeze", [a_out, "head/axes_hw"], ["head/audio_5d"], name="head/Unsqueeze"),
        helper.make_node("Mul", [v_out, "head/audio_5d"], ["head/products"], name="head/Mul"),
        reduce("ReduceSum", "head/products", "head/axis_c", [2], "head/cosine"),
        reduce("ReduceMean", "head/cosine", "head/axis_k", [1], "head/mean_cosine"),
        helper.make_node("Mul", ["head/mean_cosine", "head/scale"], ["head/scaled"], name="head/Scale"),
        helper.make_node("Add", ["head/scaled", "head/offset"], [map_output], name="head/Offset"),
    ]
    spatial = [d.dim_value or d.dim_param for d in list(visual.graph.output[0].type.tensor_type.shape.dim)[3:5]]
    out_info = helper.make_tensor_value_info(map_output, TensorProto.FLOAT, ["batch", *spatial])
    graph = helper.make_graph(
        list(vis.graph.node) + list(aud.graph.node) + head,
        "fused",
        list(vis.graph.input) + list(aud.graph.input),
        [out_info],
        initializer=list(vis.graph.initializer) + list(aud.graph.initializer) + initializers,
        value_info=list(vis.graph.value_info) + list(aud.graph.value_info),
    )
    model = helper.make_model(graph, opset_imports=list(visual.opset_import), ir_version=visual.ir_version)
    model.producer_name = visual.producer_name
    model.producer_version = visual.producer_version
    return model, tuple(n.name for n in head)
