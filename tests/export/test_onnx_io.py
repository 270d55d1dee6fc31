"""ONNX helpers on tiny modules (seconds, not minutes): export, fp16 transform repairs, composition."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from vsslrt.export.onnx_io import compose_fused, convert_to_fp16, export_module, save_model, tensor_types
from vsslrt.export.tail import NormalizeStack
from vsslrt.models import MapHead


class TinyVisual(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=4)
        self.normalize = NormalizeStack()

    def forward(self, image):
        return self.normalize(self.conv(image), self.conv(image) * 2 - 1)  # K = 2


class TinyAudio(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 8)
        self.fc2 = nn.Linear(6, 8)
        self.normalize = NormalizeStack()

    def forward(self, audio):
        flat = audio.mean(dim=(1, 2))
        return self.normalize(self.fc1(flat), self.fc2(flat))


def _run(path, name, x):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {name: x})[0]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny")
    vis, aud = TinyVisual().eval(), TinyAudio().eval()
    image, audio = torch.randn(2, 3, 16, 16), torch.randn(2, 1, 5, 6)
    v_proto, v_tail = export_module(vis, (image,), folder / "v.onnx", ["image"], ["visual"])
    a_proto, a_tail = export_module(aud, (audio,), folder / "a.onnx", ["audio"], ["audio_embedding"])
    return folder, vis, aud, (v_proto, v_tail), (a_proto, a_tail)


def test_tail_nodes_are_found_and_dynamic_batch_works(tiny):
    folder, vis, _, (proto, tail), _ = tiny
    ops = {n.name: n.op_type for n in proto.graph.node}
    assert {"ReduceL2", "Div"} <= {ops[n] for n in tail}
    assert "Conv" not in {ops[n] for n in tail}
    x = np.random.default_rng(0).standard_normal((5, 3, 16, 16)).astype(np.float32)
    with torch.no_grad():
        want = vis(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(_run(folder / "v.onnx", "image", x), want, atol=1e-6)


def test_fp16_keeps_io_and_tail_in_fp32(tiny, tmp_path):
    folder, vis, _, (proto, tail), _ = tiny
    proto16 = convert_to_fp16(proto, tail)
    # The raw converter leaves the tail's graph output in fp16; the repaired graph does not.
    assert proto16.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    types = tensor_types(proto16)
    assert types[next(n for n in proto16.graph.node if n.op_type == "Conv").input[1]] == onnx.TensorProto.FLOAT16
    save_model(proto16, tmp_path / "v16.onnx")
    x = np.random.default_rng(1).standard_normal((3, 3, 16, 16)).astype(np.float32)
    got = _run(tmp_path / "v16.onnx", "image", x)
    with torch.no_grad():
        want = vis(torch.from_numpy(x)).numpy()
    assert got.dtype == np.float32
    assert np.abs(got - want).max() <= 5e-3
    np.testing.assert_allclose(np.linalg.norm(got, axis=2), 1.0, atol=1e-5)  # normalised in fp32


def test_raw_converter_defect_is_real(tiny):
    """Guard for the repair: if onnxconverter-common fixes its output cast, this fails and says so."""
    from onnxconverter_common import float16

    _, _, _, (proto, tail), _ = tiny
    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = float16.convert_float_to_float16(copy, keep_io_types=True, node_block_list=list(tail))
    assert raw.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16


@pytest.mark.parametrize("head", [MapHead(2, 0.5, 0.5), MapHead(2, 1.0, 0.0)])
def test_composed_fused_graph(tiny, tmp_path, head):
    _, vis, aud, (v_proto, _), (a_proto, _) = tiny
    fused, head_nodes = compose_fused(v_proto, a_proto, head.scale, head.offset)
    assert all(n.startswith("head/") for n in head_nodes)
    save_model(fused, tmp_path / "m.onnx")
    onnx.checker.check_model(str(tmp_path / "m.onnx"), full_check=True)
    rng = np.random.default_rng(2)
    image = rng.standard_normal((4, 3, 16, 16)).astype(np.float32)
    audio = rng.standard_normal((4, 1, 5, 6)).astype(np.float32)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(["map"], {"image": image, "audio": audio})[0]
    with torch.no_grad():
        v = vis(torch.from_numpy(image)).numpy()
        a = aud(torch.from_numpy(audio)).numpy()
    want = head.scale * np.einsum("nkchw,nkc->nkhw", v, a).mean(axis=1) + head.offset
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_fp16_only_keeps_no_fp32_file(tiny, tmp_path):
    from vsslrt.export.pipeline import _export_graphs

    data = np.random.default_rng(3).standard_normal((2, 3, 16, 16)).astype(np.float32)
    exported, protos = _export_graphs({"visual": (TinyVisual().eval(), data)}, tmp_path, ("fp16",), None)
    assert [(e.role, e.precision, e.path.name) for e in exported] == [("visual", "fp16", "visual.fp16.onnx")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["visual.fp16.onnx"]
    assert set(protos) == {"fp16"}
