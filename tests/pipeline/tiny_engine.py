"""A tiny engine folder for pipeline tests: real ONNX graphs (a few KB) with the ezvsl front-end's
input shape, an object-saliency graph, and a manifest, built in milliseconds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from vsslrt.files import sha256_file
from vsslrt.manifest import Manifest

EMBED = 16
GRID = 7
AUDIO = (1, 257, 200)


def _w(rng, shape, name, scale=1.0):
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def _c(name, values, dtype=np.int64):
    return numpy_helper.from_array(np.asarray(values, dtype=dtype), name)


def _norm(x, out, p):
    return [
        helper.make_node("ReduceL2", [x], [f"{p}_n"], axes=[2], keepdims=1),
        helper.make_node("Max", [f"{p}_n", f"{p}_eps"], [f"{p}_s"]),
        helper.make_node("Div", [x, f"{p}_s"], [out]),
    ], [_c(f"{p}_eps", 1e-12, np.float32)]


def _save(nodes, inits, name, inputs, outputs, path):
    graph = helper.make_graph(nodes, name, inputs, outputs, inits)
    for node in graph.node:
        node.name = f"{node.op_type.lower()}_{node.output[0]}"
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save_model(model, str(path))


def _visual(path, rng):
    nodes = [
        helper.make_node("AveragePool", ["image"], ["pool"], kernel_shape=[32, 32], strides=[32, 32]),
        helper.make_node("Conv", ["pool", "w", "b"], ["conv"], kernel_shape=[1, 1]),
        helper.make_node("Reshape", ["conv", "shape"], ["raw"]),
    ]
    inits = [_w(rng, (EMBED, 3, 1, 1), "w"), _w(rng, (EMBED,), "b"), _c("shape", [-1, 1, EMBED, GRID, GRID])]
    n, i = _norm("raw", "visual", "v")
    _save(nodes + n, inits + i, "visual", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 224, 224])],
          [helper.make_tensor_value_info("visual", TensorProto.FLOAT, ["N", 1, EMBED, GRID, GRID])], path)


def _audio(path, rng, audio=AUDIO):
    nodes = [
        helper.make_node("ReduceMean", ["audio"], ["mean"], axes=[3], keepdims=0),  # (N, 1, 257)
        helper.make_node("Flatten", ["mean"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "w", "b"], ["fc"], transB=1),
        helper.make_node("Reshape", ["fc", "shape"], ["raw"]),
    ]
    inits = [_w(rng, (EMBED, audio[1]), "w"), _w(rng, (EMBED,), "b"), _c("shape", [-1, 1, EMBED])]
    n, i = _norm("raw", "emb", "a")
    n.append(helper.make_node("Identity", ["emb"], ["audio_embedding"]))
    _save(nodes + n, inits + i, "audio", [helper.make_tensor_value_info("audio", TensorProto.FLOAT, ["N", *audio])],
          [helper.make_tensor_value_info("audio_embedding", TensorProto.FLOAT, ["N", 1, EMBED])], path)


def _object(path):
    nodes = [
        helper.make_node("AveragePool", ["image"], ["pool"], kernel_shape=[32, 32], strides=[32, 32]),
        helper.make_node("Abs", ["pool"], ["abs"]),
        helper.make_node("ReduceMean", ["abs"], ["object"], axes=[1], keepdims=0),
    ]
    _save(nodes, [], "object", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 224, 224])],
          [helper.make_tensor_value_info("object", TensorProto.FLOAT, ["N", GRID, GRID])], path)


def make_tiny_engine(folder: Path, *, seed: int = 0, with_object: bool = True, frontend: str = "ezvsl") -> Path:
    """A tiny engine folder whose audio graph takes the named front-end's input shape."""
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
    if with_object:
        _object(folder / "object.onnx")
        graphs.append({"role": "object", "precision": "fp32", "file": "object.onnx", "inputs": ["image"], "outputs": ["object"]})
        outputs["object"] = {"shape": ["batch", GRID, GRID]}
    model = "ezvsl" if frontend == "ezvsl" else f"tiny-{frontend}"
    write_manifest(folder, graphs, outputs, model=model, frontend=frontend, audio=audio, seed=seed,
                   thresholds={"max": 0.55, "max10": 0.605, "maxq3": 0.58})
    return folder


def write_manifest(folder: Path, graphs: list[dict], outputs: dict, *, model: str, frontend: str, audio: tuple,
                   seed: int, thresholds: dict[str, float]) -> None:
    """The manifest of a test engine folder: its graphs hashed, float32 tensors, random-init provenance."""
    files = {g["file"]: {"sha256": sha256_file(folder / g["file"]), "size": (folder / g["file"]).stat().st_size}
             for g in graphs}
    doc = {
        "model": model, "frontend": frontend, "head": {"num_maps": 1, "scale": 0.5, "offset": 0.5}, "map_size": GRID,
        "inputs": {"image": {"shape": ["batch", 3, 224, 224]}, "audio": {"shape": ["batch", *audio]}},
        "outputs": outputs, "graphs": graphs, "files": files,
        "checkpoint": {"random_init": True, "seed": seed},
        "thresholds": {name: {"value": value, "provenance": "test"} for name, value in thresholds.items()},
        "format_version": 1,
    }
    for section in ("inputs", "outputs"):
        for spec in doc[section].values():
            spec["dtype"] = "float32"
    Manifest.from_dict(json.loads(json.dumps(doc))).write(folder)

