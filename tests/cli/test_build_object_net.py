"""`build_engine_folder(object_net=..., imagenet_weights=...)`: the export's object-network options,
passed to the export step and taken into account when an existing export is reused."""

from __future__ import annotations

import dataclasses
import importlib.util
import shutil
from pathlib import Path

import pytest

from vsslrt.errors import InputError
from vsslrt.files import sha256_file
from vsslrt.manifest import GraphEntry, Manifest, TensorSpec
from vsslrt.pipeline.build import build_engine_folder

TESTS = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("vsslrt_test_build_cases", TESTS / "cli" / "test_build.py")
cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cases)


class ObjectExport:
    """The tiny-model export of test_build, plus an object graph and the ImageNet weights' hash when asked."""

    def __init__(self) -> None:
        self.tiny = cases.TinyExport()
        self.calls: list[dict] = []

    def __call__(self, name, folder, checkpoint, *, seed, precision, threads=None, **objects) -> Manifest:
        self.calls.append(objects)
        manifest = self.tiny(name, folder, checkpoint, seed=seed, precision=precision, threads=threads)
        if objects.get("object_net"):
            shutil.copy(Path(folder) / "visual.onnx", Path(folder) / "object.onnx")  # stands in for object.onnx
            manifest.graphs.append(GraphEntry("object", "fp32", "object.onnx", ("image",), ("object",)))
            manifest.outputs["object"] = TensorSpec(("batch", 7, 7))
            manifest.add_file(Path(folder), "object.onnx")
        weights = objects.get("imagenet_weights")
        if weights is not None:
            manifest.checkpoint = dataclasses.replace(manifest.checkpoint, imagenet_weights=sha256_file(weights))
        manifest.write(Path(folder))
        return manifest


def test_object_net_reaches_the_export_and_decides_reuse(tmp_path):
    weights = tmp_path / "resnet18.pth"
    weights.write_bytes(b"imagenet weights stand-in")
    other = tmp_path / "other.pth"
    other.write_bytes(b"other weights")
    folder = tmp_path / "engine"
    export = ObjectExport()
    options = dict(backend="ort", caps=cases.ORT_ONLY, export=export)

    build_engine_folder("ezvsl", folder, **options)
    assert export.calls == [{}]  # no object options: the export function sees none
    assert not any(g.role == "object" for g in Manifest.read(folder).graphs)

    report = build_engine_folder("ezvsl", folder, object_net=True, imagenet_weights=weights, **options)
    assert report.exported and export.calls[-1] == {"object_net": True, "imagenet_weights": weights}
    manifest = Manifest.read(folder)
    assert any(g.role == "object" for g in manifest.graphs)
    assert manifest.checkpoint.imagenet_weights == sha256_file(weights)

    again = build_engine_folder("ezvsl", folder, object_net=True, imagenet_weights=weights, **options)
    assert not again.exported and len(export.calls) == 2  # same model, weights and object network: reused
    build_engine_folder("ezvsl", folder, object_net=True, imagenet_weights=other, **options)
    assert len(export.calls) == 3  # other ImageNet weights: exported again
    build_engine_folder("ezvsl", folder, **options)
    assert len(export.calls) == 4  # random init: the visual backbone had the other weights


def test_missing_imagenet_weights_fail_before_any_work(tmp_path):
    export = ObjectExport()
    with pytest.raises(InputError, match=r"absent\.pth: expected the torchvision ImageNet ResNet-18 weights file"):
        build_engine_folder("ezvsl", tmp_path / "e", object_net=True, imagenet_weights=tmp_path / "absent.pth",
                            backend="ort", caps=cases.ORT_ONLY, export=export)
    assert export.calls == []
