"""A tiny engine folder that int8 quantization has something to do in (built in milliseconds).

Each encoder has three weighted operators: the last (the projection) stays fp32, the first (the stem)
is quantized unless `fp32_stem` keeps it, the middle one is quantized (`vsslrt.export.quantize`): visual AveragePool 32/32 -> Conv 1x1
3->8 -> Relu -> Conv 1x1 8->8 -> Relu -> Conv 1x1 8->16 -> L2 norm, (N, 1, 16, 7, 7); audio mean over
time -> Gemm F->32 -> Relu -> Gemm 32->32 -> Relu -> Gemm 32->16 -> L2 norm, (N, 1, 16). The audio input
shape is the named front-end's ("demo": the synthetic clips' 1 s front-end).

Also a synthetic calibration split (`synth_split`), written once per test session.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline"))
from tiny_engine import EMBED, GRID, _c, _norm, _save, write_manifest  # noqa: E402  (the tiny engine's graph helpers)
from tiny_engine import _w as tiny_w  # noqa: E402


def _w(rng, shape, name, scale=0.5):
    return tiny_w(rng, shape, name, scale)  # smaller weights keep the three layers' activations in range


def _visual(path, rng):
    nodes = [
        helper.make_node("AveragePool", ["image"], ["pool"], kernel_shape=[32, 32], strides=[32, 32]),
        helper.make_node("Conv", ["pool", "w1", "b1"], ["c1"], kernel_shape=[1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], kernel_shape=[1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Conv", ["r2", "w3", "b3"], ["c3"], kernel_shape=[1, 1]),
        helper.make_node("Reshape", ["c3", "shape"], ["raw"]),
    ]
    inits = [_w(rng, (8, 3, 1, 1), "w1"), _w(rng, (8,), "b1"), _w(rng, (8, 8, 1, 1), "w2"), _w(rng, (8,), "b2"),
             _w(rng, (EMBED, 8, 1, 1), "w3"), _w(rng, (EMBED,), "b3"), _c("shape", [-1, 1, EMBED, GRID, GRID])]
    n, i = _norm("raw", "visual", "v")
    _save(nodes + n, inits + i, "visual", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 224, 224])],
          [helper.make_tensor_value_info("visual", TensorProto.FLOAT, ["N", 1, EMBED, GRID, GRID])], path)


def _audio(path, rng, audio):
    nodes = [
        helper.make_node("ReduceMean", ["audio"], ["mean"], axes=[3], keepdims=0),
        helper.make_node("Flatten", ["mean"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "w1", "b1"], ["g1"], transB=1),
        helper.make_node("Relu", ["g1"], ["r1"]),
        helper.make_node("Gemm", ["r1", "w2", "b2"], ["g2"], transB=1),
        helper.make_node("Relu", ["g2"], ["r2"]),
        helper.make_node("Gemm", ["r2", "w3", "b3"], ["g3"], transB=1),
        helper.make_node("Reshape", ["g3", "shape"], ["raw"]),
    ]
    inits = [_w(rng, (32, audio[1]), "w1", 0.1), _w(rng, (32,), "b1"), _w(rng, (32, 32), "w2", 0.3), _w(rng, (32,), "b2"),
             _w(rng, (EMBED, 32), "w3", 0.3), _w(rng, (EMBED,), "b3"), _c("shape", [-1, 1, EMBED])]
    n, i = _norm("raw", "audio_embedding", "a")
    _save(nodes + n, inits + i, "audio", [helper.make_tensor_value_info("audio", TensorProto.FLOAT, ["N", *audio])],
          [helper.make_tensor_value_info("audio_embedding", TensorProto.FLOAT, ["N", 1, EMBED])], path)


def make_int8_engine(folder: Path, *, seed: int = 0, frontend: str = "demo") -> Path:
    """The engine folder (fp32 graphs + manifest) described in the module docstring."""
    from vsslrt.data import get_frontend

    audio = tuple(get_frontend(frontend).output_shape())
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    _visual(folder / "visual.onnx", rng)
    _audio(folder / "audio.onnx", rng, audio)
    graphs = [
        {"role": "visual", "precision": "fp32", "file": "visual.onnx", "inputs": ["image"], "outputs": ["visual"]},
        {"role": "audio", "precision": "fp32", "file": "audio.onnx", "inputs": ["audio"], "outputs": ["audio_embedding"]},
    ]
    outputs = {"visual": {"shape": ["batch", 1, EMBED, GRID, GRID]}, "audio_embedding": {"shape": ["batch", 1, EMBED]}}
    write_manifest(folder, graphs, outputs, model=f"tiny-int8-{frontend}", frontend=frontend, audio=audio, seed=seed,
                   thresholds={"max": 0.55, "maxq3": 0.58})
    return folder


def synth_split(folder: Path, n_records: int = 48) -> Path:
    """A small synthetic split (demo front-end clips) in the manifest format."""
    from vsslrt.data.synth import write_split

    if not (folder / "manifest.jsonl").is_file():
        write_split(folder, n_records, seed=1, split="train")
    return folder
