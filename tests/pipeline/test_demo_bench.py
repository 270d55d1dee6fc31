"""The engines of the two shipped demo models (the run of `vsslrt bench` with no arguments: tests/cli).

ONNX Runtime runs the shipped folders as they are; the TensorRT path builds the demos' engines through
the stand-in modules of tests/engine/_fakes.py.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import pytest

from vsslrt.pipeline.demo import DEMO_MODELS, demo_engine_dirs, demo_engines
from vsslrt.manifest import Manifest

pytest.importorskip("onnxruntime")

_spec = importlib.util.spec_from_file_location(
    "vsslrt_test_demo_fakes", Path(__file__).resolve().parents[1] / "engine" / "_fakes.py")
fakes = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fakes)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_onnx_runtime_runs_the_shipped_folders_as_they_are(tmp_path):
    assert demo_engines("ort", batch=50, cache=tmp_path) == demo_engine_dirs()
    assert not any(tmp_path.iterdir())


def test_tensorrt_engines_are_built_once_in_the_cache_never_in_the_package(tmp_path):
    shipped = {p: _sha(p / "manifest.json") for p in demo_engine_dirs()}
    cupy = fakes.make_fake_cupy()
    trt = fakes.make_fake_tensorrt("11.4.0.106", cupy=cupy)
    options = dict(caps=fakes.capabilities(with_trt=True), trt=trt, cupy=cupy)

    folders = demo_engines("trt", batch=50, cache=tmp_path, **options)
    assert [f.parent.parent for f in folders] == [tmp_path / "demo-engines"] * 2
    assert [f.name for f in folders] == list(DEMO_MODELS)  # the run's engine names stay the models' names
    assert trt.record["builds"] == 6  # visual, audio and fused graphs of each model
    for folder in folders:
        manifest = Manifest.read(folder)
        manifest.verify_files(folder)
        assert manifest.backend["backend"] == "trt" and manifest.backend["batch_profile"] == "1:50:64"
        assert all(f.passed for k, f in manifest.parity.items() if k.startswith("engine."))
        assert manifest.thresholds["maxf"].value > 0  # the universal threshold travels with the copy

    assert demo_engines("trt", batch=50, cache=tmp_path, **options) == folders
    assert trt.record["builds"] == 6  # reused through the engine cache
    assert {p: _sha(p / "manifest.json") for p in demo_engine_dirs()} == shipped
