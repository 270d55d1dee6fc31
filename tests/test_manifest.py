"""The engine-folder manifest: round trip, validation, hashes."""

from __future__ import annotations

import json

import pytest

from vsslrt.errors import InputError, ManifestMismatchError
from vsslrt.manifest import (
    MANIFEST_NAME,
    CheckpointInfo,
    GraphEntry,
    Manifest,
    ParityFigures,
    TensorSpec,
)
from vsslrt.models import MapHead, get_model


def _manifest(folder) -> Manifest:
    (folder / "visual.onnx").write_bytes(b"visual graph bytes")
    (folder / "audio.onnx").write_bytes(b"audio graph bytes")
    spec = get_model("slavc")
    m = Manifest(
        model="slavc",
        frontend="ezvsl",
        head=spec.head,
        map_size=7,
        inputs={"image": TensorSpec(("batch", 3, 224, 224)), "audio": TensorSpec(("batch", 1, 257, 200))},
        outputs={"visual": TensorSpec(("batch", 2, 512, 7, 7)), "audio_embedding": TensorSpec(("batch", 2, 512))},
        graphs=[
            GraphEntry("visual", "fp32", "visual.onnx", ("image",), ("visual",)),
            GraphEntry("audio", "fp16", "audio.onnx", ("audio",), ("audio_embedding",), ("node_div",)),
        ],
        files={},
        checkpoint=CheckpointInfo(random_init=True, seed=4),
        thresholds=dict(spec.thresholds),
        parity={"split.fp32": ParityFigures(2e-7, 1e-8, 1.0, 8, (1, 7), 1e-4, 0.0, "onnxruntime 1.32.0", True)},
        versions={"vsslrt": "0.1.0"},
        opset=20,
        backend={"name": "ort", "providers": ["CPUExecutionProvider"]},
    )
    m.add_file(folder, "visual.onnx")
    m.add_file(folder, "audio.onnx")
    return m


def test_round_trip(tmp_path):
    m = _manifest(tmp_path)
    path = m.write(tmp_path)
    assert path == tmp_path / MANIFEST_NAME
    back = Manifest.read(tmp_path)
    assert back == m
    assert back.precisions == ("fp32", "fp16")
    assert back.graph("audio", "fp16").fp32_nodes == ("node_div",)
    assert back.thresholds["maxq3"].value == pytest.approx(0.5450)
    assert not list(tmp_path.glob(".manifest-*"))  # the temp file was renamed, not left behind


def test_changed_file_is_named(tmp_path):
    m = _manifest(tmp_path)
    m.verify_files(tmp_path)
    (tmp_path / "audio.onnx").write_bytes(b"audio graph bytez")  # same size, other content
    with pytest.raises(ManifestMismatchError, match=r"audio\.onnx: expected sha256"):
        m.verify_files(tmp_path)
    (tmp_path / "audio.onnx").write_bytes(b"audio graph bytes")
    (tmp_path / "visual.onnx").unlink()
    with pytest.raises(ManifestMismatchError, match=r"visual\.onnx: expected the file recorded"):
        m.verify_files(tmp_path)


def test_missing_graph_role_is_a_mismatch(tmp_path):
    with pytest.raises(ManifestMismatchError, match="expected a fused graph in fp32"):
        _manifest(tmp_path).graph("fused")


def _edit(tmp_path, change):
    m = _manifest(tmp_path)
    m.write(tmp_path)
    data = json.loads((tmp_path / MANIFEST_NAME).read_text())
    change(data)
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda d: d["head"].update(num_maps="2"), "head.num_maps to be an integer"),
        (lambda d: d["files"]["visual.onnx"].update(sha256="xyz"), r"files\[visual.onnx\].sha256 to be 64"),
        (lambda d: d["graphs"][0].update(precision="int4"), "precision to be one of"),
        (lambda d: d["graphs"][0].update(file="../visual.onnx"), "relative path inside the folder"),
        (lambda d: d["inputs"]["image"].update(shape=["batch", 0, 224]), "positive integers or 'batch'"),
        (lambda d: d["checkpoint"].update(random_init=False), "checkpoint to be a path with its sha256"),
        (lambda d: d.pop("model"), "model to be a non-empty string"),
        (lambda d: d["parity"]["split.fp32"].update(max_abs_diff=None), "max_abs_diff to be a finite number"),
    ],
)
def test_invalid_fields_are_named(tmp_path, change, match):
    _edit(tmp_path, change)
    with pytest.raises(InputError, match=match):
        Manifest.read(tmp_path)


def test_other_format_version_is_a_mismatch(tmp_path):
    _edit(tmp_path, lambda d: d.update(format_version=2))
    with pytest.raises(ManifestMismatchError, match="format_version to be 1, got 2"):
        Manifest.read(tmp_path)


def test_unreadable_and_absent(tmp_path):
    with pytest.raises(InputError, match="expected an engine manifest, got no such file"):
        Manifest.read(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(InputError, match="expected valid JSON"):
        Manifest.read(tmp_path)


def test_invalid_manifest_is_not_written(tmp_path):
    m = _manifest(tmp_path)
    m.head = MapHead(0, 0.5, 0.5)
    with pytest.raises(InputError, match="head.num_maps to be >= 1"):
        m.write(tmp_path)
    assert not (tmp_path / MANIFEST_NAME).exists()
