"""int8 QDQ quantization of encoder graphs (vsslrt.export.quantize), on the tiny int8 engine."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx
import pytest

ort = pytest.importorskip("onnxruntime")

from vsslrt.errors import InputError  # noqa: E402
from vsslrt.export.quantize import graph_scheme, kept_fp32_nodes, quantize_graph  # noqa: E402

_spec = importlib.util.spec_from_file_location("vsslrt_test_int8_engine",
                                               Path(__file__).resolve().parents[1] / "models" / "int8_engine.py")
int8_engine = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(int8_engine)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return int8_engine.make_int8_engine(tmp_path_factory.mktemp("int8") / "eng")


def _images(n, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 3, 224, 224)).astype(np.float32)


def _run(path, name, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {name: x})[0]


@pytest.mark.parametrize("fp32_stem", [False, True])
@pytest.mark.parametrize("scheme", ["ort-cpu", "tensorrt"])
def test_quantized_graph_is_qdq_keeps_input_projection_and_norm_fp32_and_tracks_fp32(folder, tmp_path, scheme, fp32_stem):
    target = tmp_path / "visual.int8.onnx"
    result = quantize_graph(folder / "visual.onnx", target, _images(32), input_name="image", scheme=scheme, batch=8,
                            fp32_stem=fp32_stem)
    model = onnx.load(str(target))
    ops = [n.op_type for n in model.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    # What comes before the first conv, the projection and the normalisation stay fp32; the stem conv is
    # quantized unless fp32_stem keeps it.
    fp32 = {"averagepool_pool", "conv_c3", "reducel2_v_n", "div_visual"} | ({"conv_c1"} if fp32_stem else set())
    assert result.quantized_ops == (1 if fp32_stem else 2)
    kept = set(result.fp32_nodes)
    assert fp32 <= kept and "conv_c2" not in kept and ("conv_c1" in kept) == fp32_stem
    dq_outputs = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    reads_dequantized = {n.name for n in model.graph.node if set(n.input) & dq_outputs}
    assert not (fp32 - {"conv_c3"}) & reads_dequantized, "an fp32 node reads a dequantized tensor"
    assert {"conv_c2"} | ({"conv_c1"} if not fp32_stem else set()) <= reads_dequantized
    assert graph_scheme(target) == scheme
    x = _images(8, seed=1)
    ref, got = _run(folder / "visual.onnx", "image", x), _run(target, "image", x)
    cos = (ref * got).sum(axis=2)  # unit-norm embeddings: cosine per location
    assert got.dtype == np.float32 and cos.min() > 0.95
    assert not np.array_equal(ref, got)  # quantization did change the arithmetic


def test_calibration_methods_give_different_scales(folder, tmp_path):
    x = np.concatenate([_images(30), 8 * _images(2, seed=5)])  # a few outliers: the methods disagree on ranges
    scales = {}
    for method in ("minmax", "entropy", "percentile"):
        target = tmp_path / f"{method}.onnx"
        quantize_graph(folder / "visual.onnx", target, x, input_name="image", method=method, batch=8)
        model = onnx.load(str(target))
        inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
        q = [n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[1] in inits]
        scales[method] = sorted(float(inits[n.input[1]].max()) for n in q)
    assert scales["minmax"] != scales["percentile"]


def test_small_calibration_set_and_another_frontend_are_one_line_errors(folder, tmp_path):
    with pytest.raises(InputError, match="at least one batch of 16") as small:
        quantize_graph(folder / "visual.onnx", tmp_path / "v.onnx", _images(4), input_name="image", batch=16)
    assert "--calib-samples" in small.value.hint
    wrong = np.zeros((16, 1, 257, 200), np.float32)  # the ezvsl front-end's shape; the graph takes demo's
    with pytest.raises(InputError, match=r"from the demo front-end, got \(N, 1, 257, 200\)"):
        quantize_graph(folder / "audio.onnx", tmp_path / "a.onnx", wrong, input_name="audio", batch=8, frontend="demo")
    with pytest.raises(InputError, match="calibration method"):
        quantize_graph(folder / "visual.onnx", tmp_path / "v.onnx", _images(16), input_name="image", method="kl")
    assert not (tmp_path / "v.onnx").exists()


def test_the_input_stays_fp32_and_fp32_stem_keeps_up_to_the_second_weighted_operator(folder):
    """Default: only what comes before the first conv (the input normalisation; here an AveragePool). With
    fp32_stem: also the stem conv and what follows it before the next conv (its activation; a ResNet's MaxPool)."""
    model = onnx.load(str(folder / "visual.onnx"))
    names = [n.name for n in model.graph.node]
    first, second = [i for i, n in enumerate(model.graph.node) if n.op_type == "Conv"][:2]
    kept = set(kept_fp32_nodes(model))
    assert set(names[:first]) <= kept and not set(names[first:second + 1]) & kept
    kept = set(kept_fp32_nodes(model, fp32_stem=True))
    assert set(names[:second]) <= kept and "relu_r1" in kept and names[second] not in kept


def test_kept_nodes_refuse_unknown_names_and_graphs_without_weights(folder):
    model = onnx.load(str(folder / "visual.onnx"))
    assert "relu_r1" in kept_fp32_nodes(model, ["relu_r1"])
    with pytest.raises(InputError, match="no_such_node"):
        kept_fp32_nodes(model, ["no_such_node"])
    del model.graph.node[:]
    with pytest.raises(InputError, match="Conv, Gemm or MatMul"):
        kept_fp32_nodes(model)


def test_the_tail_from_a_global_pooling_on_stays_fp32():
    """The shipped demo audio encoder: convs -> ReduceMax over (H, W) -> BatchNorm -> Relu -> projection. The
    pooled embedding and all after it stay fp32; the convs before it are quantized. A reduction over one
    axis only is no global pooling."""
    from onnx import numpy_helper

    from vsslrt.models import DEMO_ASSETS

    model = onnx.load(str(DEMO_ASSETS / "demo-pos" / "audio.onnx"))
    names = [n.name for n in model.graph.node]
    pool = next(i for i, n in enumerate(model.graph.node) if n.op_type == "ReduceMax")
    last_conv = max(i for i, n in enumerate(model.graph.node) if n.op_type == "Conv")
    kept = set(kept_fp32_nodes(model))
    assert set(names[pool:]) <= kept and names[last_conv] not in kept
    axes = next(t for t in model.graph.initializer if t.name == model.graph.node[pool].input[1])
    axes.CopyFrom(numpy_helper.from_array(np.array([3], np.int64), axes.name))
    kept = set(kept_fp32_nodes(model))
    assert names[pool] not in kept and names[pool + 1] not in kept  # back to the projection-on rule
