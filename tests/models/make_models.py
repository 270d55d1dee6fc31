"""Build the tiny ONNX models committed beside this script (run it to regenerate them).

They follow the export conventions of vsslrt with a dynamic batch dimension "N" and a few
kilobytes of seeded weights, so tests can run real ONNX Runtime sessions in milliseconds:

- visual.onnx: "image" (N, 3, 224, 224) float32 -> "visual" (N, 1, 512, 7, 7), unit-norm over
  the 512 channels (AveragePool 32/32, Conv 1x1 3->512, ReduceL2 normalisation).
- audio.onnx: "audio" (N, 1, 16, 24) float32 -> "audio_embedding" (N, 1, 512), unit-norm (ReduceMean
  over time, Gemm 16->512, normalisation). (An ONNX output cannot reuse the input name "audio".)
- model.onnx: both inputs -> "map" (N, 7, 7) = (cosine + 1) / 2 through a batched MatMul.

FLOPs per sample (2 x multiply-accumulates of Conv/Gemm/MatMul, what vsslrt.engine.flops
counts): Conv 2*512*7*7*3 = 150528, Gemm 2*512*16 = 16384, MatMul 2*49*512 = 50176.

Usage: python tests/models/make_models.py [OUT_DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8
EMBED = 512
AUDIO_SHAPE = (1, 16, 24)
GRID = 7

FLOPS_PER_SAMPLE = {
    "visual": 2 * EMBED * GRID * GRID * 3,
    "audio": 2 * EMBED * AUDIO_SHAPE[1],
    "model": 2 * EMBED * GRID * GRID * 3 + 2 * EMBED * AUDIO_SHAPE[1] + 2 * GRID * GRID * EMBED,
}


def _const(name: str, values, dtype=np.int64) -> TensorProto:
    return numpy_helper.from_array(np.asarray(values, dtype=dtype), name)


def _weights(rng: np.random.Generator, shape: tuple[int, ...], name: str) -> TensorProto:
    return numpy_helper.from_array((rng.standard_normal(shape) * 0.1).astype(np.float32), name)


def _normalise(x: str, out: str, prefix: str) -> tuple[list, list]:
    """L2-normalise tensor `x` over axis 2 (the 512 embedding channels)."""
    nodes = [
        helper.make_node("ReduceL2", [x], [f"{prefix}_norm"], axes=[2], keepdims=1),
        helper.make_node("Max", [f"{prefix}_norm", f"{prefix}_eps"], [f"{prefix}_safe"]),
        helper.make_node("Div", [x, f"{prefix}_safe"], [out]),
    ]
    return nodes, [_const(f"{prefix}_eps", 1e-12, np.float32)]


def _visual_part(rng: np.random.Generator) -> tuple[list, list]:
    nodes = [
        helper.make_node("AveragePool", ["image"], ["v_pool"], kernel_shape=[32, 32], strides=[32, 32]),
        helper.make_node("Conv", ["v_pool", "v_w", "v_b"], ["v_conv"], kernel_shape=[1, 1]),
        helper.make_node("Reshape", ["v_conv", "v_shape"], ["v_raw"]),
    ]
    inits = [
        _weights(rng, (EMBED, 3, 1, 1), "v_w"),
        _weights(rng, (EMBED,), "v_b"),
        _const("v_shape", [-1, 1, EMBED, GRID, GRID]),
    ]
    norm_nodes, norm_inits = _normalise("v_raw", "visual", "v")
    return nodes + norm_nodes, inits + norm_inits


def _audio_part(rng: np.random.Generator) -> tuple[list, list]:
    nodes = [
        helper.make_node("ReduceMean", ["audio"], ["a_mean"], axes=[3], keepdims=0),
        helper.make_node("Flatten", ["a_mean"], ["a_flat"], axis=1),
        helper.make_node("Gemm", ["a_flat", "a_w", "a_b"], ["a_fc"], transB=1),
        helper.make_node("Reshape", ["a_fc", "a_shape"], ["a_raw"]),
    ]
    inits = [
        _weights(rng, (EMBED, AUDIO_SHAPE[1]), "a_w"),
        _weights(rng, (EMBED,), "a_b"),
        _const("a_shape", [-1, 1, EMBED]),
    ]
    norm_nodes, norm_inits = _normalise("a_raw", "audio_emb", "a")
    return nodes + norm_nodes, inits + norm_inits


def _input(name: str, dims: tuple[int, ...]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", *dims])


def _model(graph: onnx.GraphProto) -> onnx.ModelProto:
    for node in graph.node:  # unique node names (graph tools such as the fp16 converter key on them)
        node.name = f"{node.op_type.lower()}_{node.output[0]}"
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="vsslrt-tests")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def build_visual() -> onnx.ModelProto:
    nodes, inits = _visual_part(np.random.default_rng(1))
    graph = helper.make_graph(
        nodes, "tiny_visual", [_input("image", (3, 224, 224))],
        [helper.make_tensor_value_info("visual", TensorProto.FLOAT, ["N", 1, EMBED, GRID, GRID])], inits,
    )
    return _model(graph)


def build_audio() -> onnx.ModelProto:
    nodes, inits = _audio_part(np.random.default_rng(2))
    # ONNX values are single-assignment, so an output cannot share the input's name "audio".
    nodes.append(helper.make_node("Identity", ["audio_emb"], ["audio_embedding"]))
    graph = helper.make_graph(
        nodes, "tiny_audio", [_input("audio", AUDIO_SHAPE)],
        [helper.make_tensor_value_info("audio_embedding", TensorProto.FLOAT, ["N", 1, EMBED])], inits,
    )
    return _model(graph)


def build_fused() -> onnx.ModelProto:
    v_nodes, v_inits = _visual_part(np.random.default_rng(1))
    a_nodes, a_inits = _audio_part(np.random.default_rng(2))
    head = [
        helper.make_node("Reshape", ["visual", "m_vshape"], ["m_v"]),  # (N, 1, 512, 49)
        helper.make_node("Transpose", ["m_v"], ["m_vt"], perm=[0, 1, 3, 2]),  # (N, 1, 49, 512)
        helper.make_node("Unsqueeze", ["audio_emb", "m_axis"], ["m_a"]),  # (N, 1, 512, 1)
        helper.make_node("MatMul", ["m_vt", "m_a"], ["m_cos"]),  # (N, 1, 49, 1)
        helper.make_node("Reshape", ["m_cos", "m_gshape"], ["m_grid"]),  # (N, 1, 7, 7)
        helper.make_node("ReduceMean", ["m_grid"], ["m_mean"], axes=[1], keepdims=0),  # (N, 7, 7)
        helper.make_node("Mul", ["m_mean", "m_half"], ["m_scaled"]),
        helper.make_node("Add", ["m_scaled", "m_half"], ["map"]),
    ]
    head_inits = [
        _const("m_vshape", [0, 1, EMBED, GRID * GRID]),
        _const("m_axis", [3]),
        _const("m_gshape", [0, 1, GRID, GRID]),
        _const("m_half", 0.5, np.float32),
    ]
    graph = helper.make_graph(
        v_nodes + a_nodes + head, "tiny_vssl", [_input("image", (3, 224, 224)), _input("audio", AUDIO_SHAPE)],
        [helper.make_tensor_value_info("map", TensorProto.FLOAT, ["N", GRID, GRID])], v_inits + a_inits + head_inits,
    )
    return _model(graph)


BUILDERS = {"visual": build_visual, "audio": build_audio, "model": build_fused}


def main(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, build in BUILDERS.items():
        onnx.save_model(build(), str(out_dir / f"{name}.onnx"))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent)
