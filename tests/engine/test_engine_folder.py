"""An engine folder is verified as one unit before anything in it is loaded.

Every file a runner loads (graphs, their ONNX external-data files, TensorRT plans) must be listed
in the manifest with its sha256 and lie inside the folder; the manifest's own fields are covered by
its content digest; a TensorRT plan is deserialized only from bytes that match the listed sha256,
and never with embedded host code unless the user allows it. The user-facing cases run through
`vsslrt bench --latency-only` (which opens the folder's encoders first and fails in milliseconds).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline"))
from tiny_engine import make_tiny_engine  # noqa: E402

from vsslrt.cli._errors import format_error  # noqa: E402
from vsslrt.cli.app import create_app  # noqa: E402
from vsslrt.errors import InputError, ManifestMismatchError  # noqa: E402
from vsslrt.manifest import CONTENT_KEY, MANIFEST_NAME, Manifest, external_data_files  # noqa: E402

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    return make_tiny_engine(tmp_path_factory.mktemp("pristine") / "tiny", with_object=False)


@pytest.fixture
def folder(pristine, tmp_path) -> Path:
    target = tmp_path / "tiny"
    shutil.copytree(pristine, target)
    return target


@pytest.fixture(autouse=True)
def _no_peak_measurement(monkeypatch):
    # `bench --latency-only` times a 4096^2 matmul before it opens the folder; these tests need only the folder check.
    monkeypatch.setattr("vsslrt.engine.flops.measure_peak_gflops", lambda *a, **k: 1.0)


def bench(folder: Path, *extra: str):
    """`vsslrt bench --latency-only` on a folder: (exit code, the error line the CLI prints)."""
    result = CliRunner().invoke(create_app(), ["bench", "--engine", str(folder), "--latency-only", *extra])
    return result.exit_code, format_error(result.exception) if result.exception else result.output


def _one_line_error(code: int, line: str, *needles: str) -> None:
    assert code == 1, line
    assert "\n" not in line
    for needle in needles:
        assert needle in line, (needle, line)


def _edit_manifest(folder: Path, change) -> None:
    data = json.loads((folder / MANIFEST_NAME).read_text())
    change(data)
    (folder / MANIFEST_NAME).write_text(json.dumps(data, indent=2))


def _to_external_data(folder: Path, graph: str = "visual.onnx") -> str:
    """Rewrite a graph with its weights in a side file, as large exports are saved; returns its name."""
    location = f"{graph}.data"
    model = onnx.load(str(folder / graph))
    onnx.save_model(model, str(folder / graph), save_as_external_data=True, location=location, size_threshold=0)
    return location


def _rehash(folder: Path, *relatives: str) -> None:
    """Record files in the manifest the way vsslrt does (add_file, then write)."""
    manifest = Manifest.read(folder)
    for relative in relatives:
        manifest.add_file(folder, relative)
    manifest.write(folder)


# -- external data -----------------------------------------------------------------------------


def test_export_records_external_data_files_with_their_hashes(folder, monkeypatch):
    from vsslrt.export import pipeline
    from vsslrt.export.pipeline import _build_manifest, _Exported

    monkeypatch.setattr(pipeline, "_versions", dict)  # the package versions it records import torch
    from vsslrt.manifest import CheckpointInfo
    from vsslrt.models import get_model

    data = _to_external_data(folder)
    exported = [_Exported("visual", "fp32", folder / "visual.onnx"), _Exported("audio", "fp32", folder / "audio.onnx")]
    manifest = _build_manifest(get_model("ezvsl"), folder, exported, {}, CheckpointInfo(random_init=True, seed=0), 17)
    assert set(manifest.files) == {"visual.onnx", data, "audio.onnx"}
    manifest.verify_files(folder)


def test_external_data_is_verified_and_an_unlisted_file_is_refused_by_name(folder):
    data = _to_external_data(folder)
    assert external_data_files(folder, "visual.onnx") == [data]
    _rehash(folder, "visual.onnx")  # the graph re-hashed, its weights file not recorded
    with pytest.raises(ManifestMismatchError, match=r"visual\.onnx\.data: expected every external-data file of visual\.onnx"):
        Manifest.read(folder).verify_files(folder)
    _one_line_error(*bench(folder), "visual.onnx.data", "does not list")

    _rehash(folder, data)
    Manifest.read(folder).verify_files(folder)
    weights = bytearray((folder / data).read_bytes())
    weights[7] ^= 0x01  # edited weights, same size: the run must not start
    (folder / data).write_bytes(bytes(weights))
    _one_line_error(*bench(folder), "visual.onnx.data", "expected sha256")


def test_external_data_outside_the_folder_is_refused(folder, tmp_path):
    model = onnx.load(str(folder / "visual.onnx"))
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    onnx.save_model(model, str(outside / "visual.onnx"), save_as_external_data=True, location="w.data", size_threshold=0)
    for tensor in onnx.load(str(outside / "visual.onnx"), load_external_data=False).graph.initializer:
        assert tensor.data_location == onnx.TensorProto.EXTERNAL
    graph = onnx.load(str(outside / "visual.onnx"), load_external_data=False)
    for tensor in graph.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../elsewhere/w.data"
    onnx.save_model(graph, str(folder / "visual.onnx"))
    _rehash(folder, "visual.onnx")
    with pytest.raises(ManifestMismatchError, match=r"expected external data beside the graph, got location '\.\./elsewhere/w\.data'"):
        Manifest.read(folder).verify_files(folder)


# -- paths -------------------------------------------------------------------------------------


def test_a_symlink_out_of_the_folder_is_refused_even_with_the_right_hash(folder, tmp_path):
    outside = tmp_path / "outside-audio.onnx"
    shutil.copy(folder / "audio.onnx", outside)
    (folder / "audio.onnx").unlink()
    os.symlink(outside, folder / "audio.onnx")
    with pytest.raises(ManifestMismatchError, match="expected a file inside the engine folder"):
        Manifest.read(folder).verify_files(folder)
    _one_line_error(*bench(folder), "audio.onnx", "resolves to")


def test_a_symlink_inside_the_folder_is_accepted(folder):
    (folder / "graphs").mkdir()
    shutil.move(folder / "audio.onnx", folder / "graphs" / "audio.onnx")
    os.symlink(Path("graphs") / "audio.onnx", folder / "audio.onnx")
    Manifest.read(folder).verify_files(folder)


@pytest.mark.parametrize("bad", ["../tiny/visual.onnx", "/etc/passwd"])
def test_listed_paths_must_be_relative_and_inside(folder, bad):
    def change(data):
        data.pop(CONTENT_KEY)
        data["files"][bad] = data["files"]["visual.onnx"]

    _edit_manifest(folder, change)
    with pytest.raises(InputError, match="relative path inside the folder"):
        Manifest.read(folder)


def test_an_engine_file_the_manifest_does_not_hash_is_refused(folder):
    def change(data):
        data.pop(CONTENT_KEY)
        data["backend"] = {"backend": "trt", "engines": {"visual": {"file": "engines/visual.plan"}}}

    _edit_manifest(folder, change)
    with pytest.raises(InputError, match=r"files\[engines/visual\.plan\] \(backend\.engines\.visual\) to be recorded"):
        Manifest.read(folder)
    _one_line_error(*bench(folder), "engines/visual.plan")


# -- the manifest's own fields -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("head", lambda d: d["head"].update(scale=0.25)),
        ("head", lambda d: d["head"].update(offset=0.0)),
        ("map_size", lambda d: d.update(map_size=14)),
        ("frontend", lambda d: d.update(frontend="lvs")),
        ("inputs", lambda d: d["inputs"]["audio"].update(shape=["batch", 1, 257, 300])),
        ("thresholds", lambda d: d["thresholds"]["max"].update(value=0.9)),
        ("thresholds", lambda d: d.pop("thresholds")),
    ],
)
def test_an_edited_semantic_field_is_refused_naming_it(folder, field, change):
    _edit_manifest(folder, change)
    with pytest.raises(ManifestMismatchError, match=rf"expected {field} to be as written by vsslrt \({CONTENT_KEY}\)"):
        Manifest.read(folder)
    _one_line_error(*bench(folder), field, "edited")


def test_the_digest_survives_a_rewrite_and_a_reformat(folder):
    manifest = Manifest.read(folder)
    digests = json.loads((folder / MANIFEST_NAME).read_text())[CONTENT_KEY]
    assert {"model", "frontend", "head", "map_size", "inputs", "outputs", "graphs", "files", "thresholds"} <= set(digests)
    manifest.write(folder)
    _edit_manifest(folder, lambda d: None)  # same content, other whitespace
    assert Manifest.read(folder) == manifest


def test_a_manifest_without_the_digest_is_read_as_an_older_format(folder):
    _edit_manifest(folder, lambda d: d.pop(CONTENT_KEY))
    manifest = Manifest.read(folder)
    manifest.verify_files(folder)
    manifest.write(folder)  # writing adds the digest
    assert CONTENT_KEY in json.loads((folder / MANIFEST_NAME).read_text())


def test_a_malformed_digest_is_refused(folder):
    _edit_manifest(folder, lambda d: d.update({CONTENT_KEY: "0" * 64}))
    with pytest.raises(ManifestMismatchError, match=f"expected {CONTENT_KEY} to map each field"):
        Manifest.read(folder)


# -- TensorRT plans --------------------------------------------------------------------------------


@pytest.fixture
def trt_folder(folder, fakes, monkeypatch):
    """The tiny folder with TensorRT engines built by the stand-in modules and recorded as `vsslrt build`
    records them (plans and key files hashed in `files`, `backend.engines.<role>.file`); `import
    tensorrt` and `import cupy` then return the stand-ins."""
    from vsslrt.engine.cache import EngineCache, key_path_for
    from vsslrt.engine.probe import build_environment
    from vsslrt.engine.trt_builder import BatchProfile, BuildSettings, build_engine

    cupy = fakes.make_fake_cupy()
    trt = fakes.make_fake_tensorrt("11.4.0.106", cupy=cupy)
    manifest = Manifest.read(folder)
    environment = build_environment(trt=trt, cupy=cupy)
    engines = {}
    for role in ("visual", "audio"):
        built = build_engine(folder / manifest.graph(role).file, BuildSettings(BatchProfile(1, 2, 4)),
                             EngineCache(folder / "engines"), name=f"{role}-fp32", environment=environment, trt=trt)
        for path in (built.plan_path, key_path_for(built.plan_path)):
            manifest.add_file(folder, path.relative_to(folder).as_posix())
        engines[role] = {"file": built.plan_path.relative_to(folder).as_posix(), "key": built.key.to_dict()}
    manifest.backend = {"backend": "trt", "precision": "fp32", "engines": engines}
    manifest.write(folder)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    return folder, trt


def _plan(folder: Path, role: str) -> Path:
    return folder / Manifest.read(folder).backend["engines"][role]["file"]


def test_plans_are_listed_hashed_and_loaded_without_host_code(trt_folder):
    from vsslrt.pipeline.encoders import open_encoders

    folder, trt = trt_folder
    manifest = Manifest.read(folder)
    for role in ("visual", "audio"):
        assert manifest.backend["engines"][role]["file"] in manifest.files
    with open_encoders(folder) as enc:
        assert enc.backend == "trt"
        out = enc.embed_images(np.zeros((2, 3, 224, 224), np.float32))
        assert out.shape == (2, 1, 16, 7, 7)
    assert trt.record["runtimes"] and all(r.engine_host_code_allowed is False for r in trt.record["runtimes"])


def test_a_tampered_plan_is_refused_by_the_folder_check_and_by_the_runner(trt_folder):
    from vsslrt.engine.trt_runner import TrtRunner

    folder, trt = trt_folder
    plan = _plan(folder, "visual")
    listed = Manifest.read(folder).files[plan.relative_to(folder).as_posix()].sha256
    plan.write_bytes(plan.read_bytes().replace(b'"onnx": "', b'"onnx":  "'))
    _one_line_error(*bench(folder), plan.name, "expected sha256")
    # The runner compares the bytes it deserializes with the listed hash itself (no check-then-load gap).
    with pytest.raises(ManifestMismatchError, match="as listed in the engine folder's manifest, got a different plan"):
        TrtRunner(plan, expected_sha256=listed).activate()


def test_a_plan_with_host_code_loads_only_when_the_user_allows_it(trt_folder, fakes):
    from vsslrt.engine.cache import EngineCache, read_key
    from vsslrt.engine.trt_runner import TrtRunner

    folder, trt = trt_folder
    built = _plan(folder, "visual")
    key, _ = read_key(built)
    doc = json.loads(built.read_bytes())
    doc["host_code"] = True  # what the stand-in builder writes for BuilderFlag.VERSION_COMPATIBLE
    plan = EngineCache(folder / "other").store("visual", key, json.dumps(doc).encode())
    with pytest.raises(ManifestMismatchError, match="loads only with allow_host_code=True"):
        TrtRunner(plan).activate()
    assert trt.record["runtimes"][-1].engine_host_code_allowed is False
    with TrtRunner(plan, allow_host_code=True) as runner:
        assert runner.infer({"image": np.zeros((1, 3, 224, 224), np.float32)})["visual"].shape == (1, 1, 16, 7, 7)
    assert trt.record["runtimes"][-1].engine_host_code_allowed is True


def test_the_stand_in_builder_marks_version_compatible_plans_as_host_code(make_trt, models_dir, tmp_path):
    from vsslrt.engine.trt_common import create_builder, make_logger

    trt = make_trt()
    builder = create_builder(trt, make_logger(trt))
    network = builder.create_network(0)
    trt.OnnxParser(network, None).parse_from_file(str(models_dir / "visual.onnx"))
    config = builder.create_builder_config()
    config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
    profile = builder.create_optimization_profile()
    profile.set_shape("image", (1, 3, 224, 224), (1, 3, 224, 224), (2, 3, 224, 224))
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    assert trt.Runtime(None).deserialize_cuda_engine(plan) is None
    runtime = trt.Runtime(None)
    runtime.engine_host_code_allowed = True
    assert runtime.deserialize_cuda_engine(plan) is not None


def test_a_folder_whose_plan_embeds_host_code_opens_only_with_allow_host_code(trt_folder):
    from vsslrt.pipeline.encoders import open_encoders

    folder, trt = trt_folder
    plan = _plan(folder, "visual")
    doc = json.loads(plan.read_bytes())
    doc["host_code"] = True
    plan.write_bytes(json.dumps(doc).encode())
    _rehash(folder, plan.relative_to(folder).as_posix())  # listed with its hash: only the host code stops it
    code, line = bench(folder)
    _one_line_error(code, line, plan.name, "allow_host_code=True")
    with open_encoders(folder, allow_host_code=True) as enc:
        assert enc.embed_images(np.zeros((1, 3, 224, 224), np.float32)).shape == (1, 1, 16, 7, 7)


# -- the shipped demos -------------------------------------------------------------------------------


def test_the_shipped_demos_carry_the_digest_and_an_edit_of_a_copy_is_refused(tmp_path):
    from vsslrt.models import DEMO_ASSETS

    source = Path(DEMO_ASSETS) / "demo-san"
    assert CONTENT_KEY in json.loads((source / MANIFEST_NAME).read_text())
    Manifest.read(source).verify_files(source)
    copy = tmp_path / "demo-san"
    shutil.copytree(source, copy)
    _edit_manifest(copy, lambda d: d["thresholds"]["maxf"].update(value=0.05))
    _one_line_error(*bench(copy), "thresholds", "edited")
