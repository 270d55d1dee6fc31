"""`vsslrt build`: export reuse, engines through the cache, parity against ONNX Runtime fp32, manifest.

The export step is replaced by a function that writes the tiny committed models (tests/models/)
as an engine folder with a real manifest, so the rest of the pipeline runs for real: ONNX Runtime
on the CPU, or TensorRT through the stand-in modules of tests/engine/_fakes.py.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from typer.testing import CliRunner

from vsslrt.pipeline.build import BuildReport, EngineRecord, build_engine_folder, build_exported_folder
from vsslrt.cli.app import create_app
from vsslrt.errors import BackendUnavailableError, EngineBuildError, InputError, ManifestMismatchError
from vsslrt.manifest import CheckpointInfo, GraphEntry, Manifest, ParityFigures, TensorSpec
from vsslrt.models import get_model

TESTS = Path(__file__).resolve().parents[1]
MODELS = TESTS / "models"

_spec = importlib.util.spec_from_file_location("vsslrt_test_build_fakes", TESTS / "engine" / "_fakes.py")
fakes = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fakes)

ORT_ONLY = fakes.capabilities(with_trt=False)
WITH_TRT = fakes.capabilities(with_trt=True)


class TinyExport:
    """Stands in for export_model: writes the tiny models and their manifest; counts calls."""

    def __init__(self, perturb_fp16_visual: bool = False) -> None:
        self.calls = 0
        self.precisions: list[str] = []
        self.perturb = perturb_fp16_visual

    def __call__(self, name, folder, checkpoint, *, seed, precision, threads=None) -> Manifest:
        from onnxconverter_common import float16

        assert precision in ("fp32", "both")  # build always needs the fp32 graphs as parity reference
        self.calls += 1
        self.precisions.append(precision)
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        graphs = []
        roles = {"visual": ("visual.onnx", ("image",), ("visual",)), "audio": ("audio.onnx", ("audio",), ("audio_embedding",)),
                 "fused": ("model.onnx", ("image", "audio"), ("map",))}
        for role, (file, ins, outs) in roles.items():
            shutil.copy(MODELS / file, folder / file)
            graphs.append(GraphEntry(role, "fp32", file, ins, outs))
            if precision in ("fp16", "both"):
                model = onnx.load(str(MODELS / file))
                if self.perturb and role == "visual":  # a broken fp16 graph: flipped conv weights
                    for t in model.graph.initializer:
                        if t.name == "v_w":
                            t.CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(t), "v_w"))
                half = float16.convert_float_to_float16(model, keep_io_types=True)
                file16 = file.replace(".onnx", ".fp16.onnx")
                onnx.save_model(half, str(folder / file16))
                graphs.append(GraphEntry(role, "fp16", file16, ins, outs))
        manifest = Manifest(
            model=name, frontend="ezvsl", head=get_model(name).head, map_size=7,
            inputs={"image": TensorSpec(("batch", 3, 224, 224)), "audio": TensorSpec(("batch", 1, 16, 24))},
            outputs={"visual": TensorSpec(("batch", 1, 512, 7, 7)), "audio_embedding": TensorSpec(("batch", 1, 512)),
                     "map": TensorSpec(("batch", 7, 7))},
            graphs=graphs, files={}, checkpoint=CheckpointInfo(random_init=True, seed=seed),
        )
        for g in graphs:
            manifest.add_file(folder, g.file)
        manifest.write(folder)
        return manifest


def test_ort_build_exports_checks_parity_and_records(tmp_path):
    export = TinyExport()
    report = build_engine_folder("ezvsl", tmp_path, backend="auto", caps=ORT_ONLY, export=export)
    assert (report.backend, report.exported, report.precision) == ("ort", True, "fp32")
    assert "no GPU backend is usable" in report.backend_reason
    assert [e.role for e in report.engines] == ["visual", "audio", "fused"]
    assert set(report.parity) == {"engine.split.fp32", "engine.fused.fp32"}
    fig = report.parity["engine.fused.fp32"]
    assert fig.passed and fig.max_abs_diff == 0.0 and fig.batch_sizes == (1, 7) and fig.n_samples == 8
    manifest = Manifest.read(tmp_path)
    assert manifest.backend["backend"] == "ort" and manifest.backend["provider"] == "cpu"
    assert manifest.backend["engines"]["visual"]["file"] == "visual.onnx"
    assert manifest.parity["engine.split.fp32"] == report.parity["engine.split.fp32"]

    again = build_engine_folder("ezvsl", tmp_path, backend="ort", caps=ORT_ONLY, export=export)
    assert not again.exported and export.calls == 1  # same model, seed and precision: the export is reused
    build_engine_folder("ezvsl", tmp_path, seed=1, backend="ort", caps=ORT_ONLY, export=export)
    assert export.calls == 2  # other weights: exported again


def test_fp16_graphs_pass_the_fp16_gate(tmp_path):
    export = TinyExport()
    build_engine_folder("ezvsl", tmp_path, backend="ort", caps=ORT_ONLY, export=export)
    report = build_engine_folder("ezvsl", tmp_path, backend="ort", precision="fp16", caps=ORT_ONLY, export=export)
    assert export.precisions == ["fp32", "both"]  # the fp32-only export lacked fp16 graphs
    fig = report.parity["engine.fused.fp16"]
    assert fig.passed and 0 < fig.max_abs_diff <= 5e-3 and fig.argmax_agreement >= 0.99
    assert Manifest.read(tmp_path).backend["engines"]["fused"]["file"] == "model.fp16.onnx"


def test_failed_parity_raises_and_leaves_the_manifest_alone(tmp_path):
    with pytest.raises(EngineBuildError, match=r"expected the ort fp16 engines to match ONNX Runtime fp32, got engine.split.fp16: max \|diff\|"):
        build_engine_folder("ezvsl", tmp_path, backend="ort", precision="fp16", caps=ORT_ONLY, export=TinyExport(perturb_fp16_visual=True))
    manifest = Manifest.read(tmp_path)
    assert manifest.backend == {} and not any(k.startswith("engine.") for k in manifest.parity)


def test_trt_build_caches_engines_and_says_what_changed(tmp_path):
    cupy = fakes.make_fake_cupy()
    trt = fakes.make_fake_tensorrt("11.4.0.106", cupy=cupy)
    export = TinyExport()
    first = build_engine_folder("ezvsl", tmp_path, backend="trt", batch="1:4:8", caps=WITH_TRT, trt=trt, cupy=cupy, export=export)
    assert first.backend == "trt" and trt.record["builds"] == 3
    assert not any(e.reused for e in first.engines)
    assert all(f.passed and f.max_abs_diff < 1e-6 for f in first.parity.values())
    manifest = Manifest.read(tmp_path)
    manifest.verify_files(tmp_path)  # plans and key files are hashed in the manifest
    visual = manifest.backend["engines"]["visual"]
    assert visual["file"].startswith("engines/visual-fp32-") and visual["key"]["profile"] == "1:4:8"
    assert manifest.backend["gpu"]["gpu_name"] == "NVIDIA H100 80GB HBM3"

    second = build_engine_folder("ezvsl", tmp_path, backend="trt", batch="1:4:8", caps=WITH_TRT, trt=trt, cupy=cupy, export=export)
    assert all(e.reused for e in second.engines) and trt.record["builds"] == 3 and export.calls == 1

    newer = fakes.make_fake_tensorrt("11.5.0", cupy=cupy)
    third = build_engine_folder("ezvsl", tmp_path, backend="trt", batch="1:4:8", caps=WITH_TRT, trt=newer, cupy=cupy, export=export)
    assert not any(e.reused for e in third.engines)
    assert third.engines[0].changes == ("tensorrt_version 11.4.0.106 -> 11.5.0",)


def test_build_exported_folder_builds_and_reuses_engines_of_an_existing_export(tmp_path):
    TinyExport()("ezvsl", tmp_path, None, seed=0, precision="fp32")
    cupy = fakes.make_fake_cupy()
    trt = fakes.make_fake_tensorrt("11.4.0.106", cupy=cupy)
    first = build_exported_folder(tmp_path, backend="trt", batch="1:4:8", caps=WITH_TRT, trt=trt, cupy=cupy)
    assert first.backend == "trt" and first.model == "ezvsl" and not first.exported and trt.record["builds"] == 3
    assert all(f.passed and f.max_abs_diff < 1e-6 for f in first.parity.values())
    manifest = Manifest.read(tmp_path)
    manifest.verify_files(tmp_path)
    assert manifest.backend["backend"] == "trt" and set(manifest.backend["engines"]) == {"visual", "audio", "fused"}
    second = build_exported_folder(tmp_path, backend="trt", batch="1:4:8", caps=WITH_TRT, trt=trt, cupy=cupy)
    assert all(e.reused for e in second.engines) and trt.record["builds"] == 3


def test_build_exported_folder_refuses_a_changed_graph_or_missing_precision(tmp_path):
    TinyExport()("ezvsl", tmp_path, None, seed=0, precision="fp32")
    with pytest.raises(InputError, match="fp16 and fp32 visual and audio graphs"):
        build_exported_folder(tmp_path, backend="ort", precision="fp16", caps=ORT_ONLY)
    (tmp_path / "audio.onnx").write_bytes((tmp_path / "audio.onnx").read_bytes() + b"\0")
    with pytest.raises(ManifestMismatchError, match="audio.onnx"):
        build_exported_folder(tmp_path, backend="ort", caps=ORT_ONLY)


def test_explicit_backend_that_cannot_run(tmp_path):
    with pytest.raises(BackendUnavailableError, match=r"pip install 'vsslrt\[trt\]'"):
        build_engine_folder("ezvsl", tmp_path, backend="trt", caps=ORT_ONLY, export=TinyExport())
    assert not (tmp_path / "manifest.json").exists()


# -- CLI ------------------------------------------------------------------------------------


def _fake_report(folder: Path) -> BuildReport:
    fig = ParityFigures(2e-7, 1e-8, 1.0, 8, (1, 7), 1e-4, 0.0, "trt fp32", True)
    engine = EngineRecord("visual", "engines/visual-fp32-abc.plan", reused=False, changes=("gpu_name A100 -> H100",),
                          info={"inspector": {"fp16_share": 0.0}})
    return BuildReport(folder, "ezvsl", "trt", "TensorRT 11.4 and a CUDA device (H100) are usable", "fp32", "1:16:64",
                       True, (engine,), {"engine.split.fp32": fig})


def test_cli_passes_options_and_reports(tmp_path, monkeypatch):
    calls = []

    def fake_build(model, out, **kwargs):
        calls.append((model, out, kwargs))
        return _fake_report(Path(out))

    monkeypatch.setattr("vsslrt.pipeline.build.build_engine_folder", fake_build)
    result = CliRunner().invoke(
        create_app(),
        ["build", "--model", "ezvsl", "--random-init", "--out", str(tmp_path), "--backend", "trt", "--precision", "fp16",
         "--batch", "1:32:128", "--workspace-mib", "2048", "--opt-level", "5"],
    )
    assert result.exit_code == 0, result.output
    (model, out, kwargs) = calls[0]
    assert (model, out) == ("ezvsl", tmp_path)
    assert kwargs == dict(checkpoint=None, seed=0, backend="trt", precision="fp16", batch="1:32:128",
                          workspace_bytes=2048 << 20, optimization_level=5, threads=None)
    assert "backend: trt (TensorRT 11.4 and a CUDA device (H100) are usable)" in result.output
    assert "rebuilt because gpu_name A100 -> H100" in result.output
    assert "parity engine.split.fp32" in result.output


def test_cli_requires_exactly_one_weight_source(tmp_path):
    result = CliRunner().invoke(create_app(), ["build", "--model", "ezvsl", "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert "expected exactly one of --checkpoint PATH or --random-init, got neither" in str(result.exception)


def test_cli_builds_an_existing_engine_folder_in_place(tmp_path):
    TinyExport()("ezvsl", tmp_path, None, seed=0, precision="fp32")
    result = CliRunner().invoke(create_app(), ["build", "--engine", str(tmp_path), "--backend", "ort"])
    assert result.exit_code == 0, result.output
    assert f"reused the export of ezvsl in {tmp_path}" in result.output
    assert Manifest.read(tmp_path).backend["backend"] == "ort"


@pytest.mark.parametrize("args, message", [
    (["--engine", "X", "--model", "ezvsl"], "build --engine: expected no export options, got --model"),
    (["--engine", "X", "--random-init"], "got --random-init"),
    (["--random-init", "--out", "X"], "expected --model and --out (or --engine DIR), got no --model"),
])
def test_cli_engine_and_export_options_exclude_each_other(args, message):
    result = CliRunner().invoke(create_app(), ["build", *args])
    assert isinstance(result.exception, InputError) and message in str(result.exception)


def test_cli_end_to_end_on_cpu(tmp_path, monkeypatch):
    """The real command with the tiny export: ONNX Runtime on this machine, manifest written."""
    monkeypatch.setattr("vsslrt.export.pipeline.export_model", TinyExport())
    result = CliRunner().invoke(create_app(), ["build", "--model", "ezvsl", "--random-init", "--backend", "ort", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "(run by ONNX Runtime)" in result.output
    assert np.isclose(Manifest.read(tmp_path).parity["engine.fused.fp32"].max_abs_diff, 0.0)
