"""FLOP counting from ONNX graphs (hand-computed numbers) and the matmul peak."""

from __future__ import annotations

import importlib.util

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from vsslrt.engine.flops import count_flops, measure_peak, measure_peak_gflops
from vsslrt.errors import InputError


def test_committed_models(models_dir):
    # Conv 1x1, 3 -> 512 channels on a 7x7 grid: 2 * 512 * 49 * 3
    assert count_flops(models_dir / "visual.onnx").by_op == {"Conv": 150528}
    # Gemm (1 x 16) @ (16 x 512): 2 * 512 * 16
    assert count_flops(models_dir / "audio.onnx").by_op == {"Gemm": 16384}
    # plus the batched MatMul (1, 1, 49, 512) @ (1, 1, 512, 1): 2 * 49 * 512
    fused = count_flops(models_dir / "model.onnx")
    assert fused.by_op == {"Conv": 150528, "Gemm": 16384, "MatMul": 50176}
    assert fused.total == 217088
    assert fused.gflops_per_sample == pytest.approx(217088e-9)


def test_counts_scale_with_batch_and_match_the_generator(models_dir):
    spec = importlib.util.spec_from_file_location("make_models", models_dir / "make_models.py")
    make_models = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_models)
    for name, flops in make_models.FLOPS_PER_SAMPLE.items():
        counted = count_flops(models_dir / f"{name}.onnx", batch=3)
        assert counted.total == 3 * flops
        assert counted.gflops_per_sample == pytest.approx(flops / 1e9)


def _conv_model(group: int, stride: int, trans_a_gemm: bool) -> onnx.ModelProto:
    """x (N, 4, 8, 8) -> Conv(6 out, 3x3, pad 1, group, stride) -> Flatten -> Gemm(-> 5)."""
    rng = np.random.default_rng(0)
    out_hw = 8 // stride
    flat = 6 * out_hw * out_hw
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[stride, stride], group=group),
        helper.make_node("Flatten", ["c"], ["f"], axis=1),
    ]
    if trans_a_gemm:
        nodes += [helper.make_node("Transpose", ["f"], ["ft"], perm=[1, 0]), helper.make_node("Gemm", ["ft", "g"], ["y"], transA=1)]
    else:
        nodes.append(helper.make_node("Gemm", ["f", "g"], ["y"]))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [
            numpy_helper.from_array(rng.standard_normal((6, 4 // group, 3, 3)).astype(np.float32), "w"),
            numpy_helper.from_array(rng.standard_normal((flat, 5)).astype(np.float32), "g"),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize(("group", "stride", "trans_a"), [(1, 1, False), (2, 2, True)])
def test_grouped_strided_conv_and_gemm(group, stride, trans_a):
    out_hw = 8 // stride
    conv = 2 * 6 * out_hw * out_hw * (4 // group) * 9  # per output element: (C / group) x 3 x 3 MACs
    gemm = 2 * 5 * 6 * out_hw * out_hw  # (1 x K) @ (K x 5)
    counted = count_flops(_conv_model(group, stride, trans_a), batch=2)
    assert counted.by_op == {"Conv": 2 * conv, "Gemm": 2 * gemm}


def test_symbolic_non_batch_dimension_is_refused(models_dir):
    model = onnx.load(str(models_dir / "audio.onnx"))
    model.graph.input[0].type.tensor_type.shape.dim[3].dim_param = "T"
    with pytest.raises(InputError, match="expected only the batch dimension of input 'audio' to be symbolic, got dimension 3 = T"):
        count_flops(model)


def test_peak_is_a_positive_rate():
    assert measure_peak_gflops(size=128, repeats=2) > 0.1
    peak = measure_peak(size=128, repeats=2)
    assert peak.library == "numpy" and peak.size == 128 and peak.gflops_per_cpu_second > 0
    with pytest.raises(InputError, match="numpy or cupy"):
        measure_peak_gflops(library="torch")
