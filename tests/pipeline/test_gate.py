"""The int8 build and its accuracy gate in metric space (vsslrt.pipeline.int8, vsslrt.pipeline.gate).

A tiny engine with quantizable encoders (tests/models/int8_engine.py) and a 48-record synthetic split:
ONNX Runtime on the CPU for real, TensorRT through the stand-in of tests/engine/_fakes.py (whose
parser and engine take the QDQ graph as it is and run it with ONNX Runtime)."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from vsslrt.errors import BackendUnavailableError, EngineBuildError, InputError  # noqa: E402
from vsslrt.manifest import Manifest  # noqa: E402
from vsslrt.pipeline.build import build_exported_folder  # noqa: E402
from vsslrt.pipeline.gate import GateFigures, GateThresholds, compare, format_gate, format_gates  # noqa: E402
from vsslrt.pipeline.int8 import Calibration  # noqa: E402

TESTS = Path(__file__).resolve().parents[1]


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


int8_engine = _load("vsslrt_test_int8_engine", TESTS / "models" / "int8_engine.py")
fakes = _load("vsslrt_test_gate_fakes", TESTS / "engine" / "_fakes.py")
OPEN = GateThresholds(max_delta=1e9, min_argmax_agreement=0.0)


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    return int8_engine.synth_split(tmp_path_factory.mktemp("calib") / "split")


def _calibration(split, **kw):
    return Calibration(data=str(split), samples=8, batch=8, gate_samples=16, **kw)


# -- the comparison, against hand-computed figures ------------------------------------------


def _metrics(**over):
    base = {"pos/ciou@median": 40.0, "pos/auc@median": 45.0, "pos/miou@maxq3": 30.0, "silence/pia@maxq3": 10.0,
            "noise/pia@maxq3": 12.0, "offscreen/pia@maxq3": 20.0, "f/pos_neg@maxq3": 50.0,
            "max/auroc/pos_vs_silence": 0.90, "max/auroc/pos_vs_noise": 0.80, "max/auroc/pos_vs_offscreen": math.nan,
            "pos/miou@max": 1.0}
    return {**base, **over}


def test_compare_reports_deltas_in_points_and_fails_on_any_limit():
    ref, new = _metrics(), _metrics(**{"pos/ciou@median": 41.5, "max/auroc/pos_vs_noise": 0.795})
    cells = np.arange(100)
    moved = cells.copy()
    moved[:2] = -1  # 98 % agreement
    fig = compare(ref, new, cells, moved, GateThresholds(), precision="int8", backend="ort", reference="ort fp32",
                  data="test", n_samples=100)
    assert fig.threshold == "maxq3"
    assert fig.deltas["pos cIoU@median"] == pytest.approx(1.5)
    assert fig.deltas["max AUROC pos vs noise"] == pytest.approx(-0.5)  # probabilities -> points
    assert fig.deltas["silence pIA@maxq3"] == 0.0
    assert "max AUROC pos vs offscreen" not in fig.deltas  # undefined on both sides
    assert fig.argmax_agreement == pytest.approx(0.98)
    assert not fig.passed
    assert fig.failures() == ["pos cIoU@median +1.50", "argmax agreement 98.0% < 99%"]
    ok = compare(ref, _metrics(**{"pos/ciou@median": 40.9}), cells, cells, GateThresholds(), precision="int8",
                 backend="ort", reference="ort fp32", data="test", n_samples=100)
    assert ok.passed and ok.failures() == []
    nan = compare(ref, _metrics(**{"pos/auc@median": math.nan}), cells, cells, GateThresholds(), precision="int8",
                  backend="ort", reference="ort fp32", data="test", n_samples=100)
    assert not nan.passed  # a metric lost on one side only is a failure
    again = GateFigures.from_dict(json.loads(json.dumps(fig.to_dict())))
    assert again.deltas == fig.deltas and again.passed is False
    line = format_gate(fig.to_dict())
    assert "FAILED" in line and "pos cIoU@median +1.50" in line and "98.0%" in line and "\n" not in line


def test_thresholds_are_validated():
    with pytest.raises(InputError, match="maximum metric delta"):
        GateThresholds(max_delta=-1)
    with pytest.raises(InputError, match="argmax agreement"):
        GateThresholds(min_argmax_agreement=1.5)


# -- builds -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ort_int8(tmp_path_factory, split):
    folder = int8_engine.make_int8_engine(tmp_path_factory.mktemp("ort") / "eng")
    report = build_exported_folder(folder, backend="ort", precision="int8", calibration=_calibration(split, gate=OPEN),
                                   caps=fakes.capabilities(with_trt=False), threads=2)
    return folder, report


def test_ort_int8_build_writes_qdq_graphs_the_calibration_record_and_the_gate(ort_int8):
    folder, report = ort_int8
    manifest = Manifest.read(folder)
    manifest.verify_files(folder)
    assert manifest.precisions == ("fp32", "int8")
    assert manifest.backend["precision"] == "int8"
    for role in ("visual", "audio"):
        graph = manifest.graph(role, "int8")
        assert graph.file == f"{role}.int8.onnx" and graph.fp32_nodes
        record = manifest.quantization[role]
        assert record["scheme"] == "ort-cpu" and record["method"] == "percentile" and record["samples"] == 8
        assert record["quantized_ops"] == 2 and record["fp32_stem"] is False  # the stem and the middle layer
    gate = manifest.gates["int8"]
    assert gate["n_samples"] == 16 and gate["backend"] == "ort" and gate["reference"] == "ort fp32"
    assert set(gate["deltas"]) >= {"pos cIoU@median", "pos AUC@median", "silence pIA@maxq3", "max AUROC pos vs noise"}
    assert report.gate.to_dict() == gate
    assert 0.0 <= gate["argmax_agreement"] <= 1.0
    assert report.parity["engine.split.int8"].passed
    (line,) = format_gates(manifest, "int8")
    assert line.startswith("int8 on ort vs ort fp32: accuracy gate passed on 16 held-back samples")


def test_rebuild_reuses_the_int8_graphs(ort_int8, split):
    folder, _ = ort_int8
    before = (folder / "visual.int8.onnx").stat().st_mtime_ns
    build_exported_folder(folder, backend="ort", precision="int8", calibration=_calibration(split, gate=OPEN),
                          caps=fakes.capabilities(with_trt=False), threads=2)
    assert (folder / "visual.int8.onnx").stat().st_mtime_ns == before


def test_a_failed_gate_is_one_line_with_figures_and_restores_the_manifest(tmp_path, split):
    folder = int8_engine.make_int8_engine(tmp_path / "eng")
    before = (folder / "manifest.json").read_bytes()
    strict = GateThresholds(max_delta=0.0, min_argmax_agreement=1.0)
    with pytest.raises(EngineBuildError) as err:
        build_exported_folder(folder, backend="ort", precision="int8", calibration=_calibration(split, gate=strict),
                              caps=fakes.capabilities(with_trt=False), threads=2)
    message = err.value.one_line()
    assert "\n" not in message and "argmax agreement" in message and "16 held-back samples" in message
    assert (folder / "manifest.json").read_bytes() == before


def test_tensorrt_builds_the_symmetric_qdq_graph_unchanged(tmp_path, split, monkeypatch):
    """Through the stand-in: the parser takes the int8 graph as written, the key says int8, and the
    gate runs on the built engines."""
    from vsslrt.export.quantize import graph_scheme

    cupy = fakes.make_fake_cupy()
    trt = fakes.make_fake_tensorrt("11.4.0.106", cupy=cupy)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)  # the gate opens the engines like `vsslrt bench` does
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    folder = int8_engine.make_int8_engine(tmp_path / "eng")
    report = build_exported_folder(folder, backend="trt", precision="int8", calibration=_calibration(split, gate=OPEN),
                                   caps=fakes.capabilities(with_trt=True), trt=trt, cupy=cupy, threads=2,
                                   batch="1:8:16")
    assert graph_scheme(folder / "visual.int8.onnx") == "tensorrt"
    engines = {e.role: e for e in report.engines}
    assert set(engines) == {"visual", "audio"}
    for role, engine in engines.items():
        assert engine.info["onnx"] == f"{role}.int8.onnx" and engine.info["key"]["precision"] == "int8"
    manifest = Manifest.read(folder)
    assert manifest.quantization["visual"]["scheme"] == "tensorrt"
    assert manifest.gates["int8"]["backend"] == "trt"


def test_bad_calibration_inputs_are_one_line_errors(tmp_path, split):
    folder = int8_engine.make_int8_engine(tmp_path / "eng")
    caps = fakes.capabilities(with_trt=False)
    with pytest.raises(InputError, match="expected more than --calib-samples 48 samples"):
        build_exported_folder(folder, backend="ort", precision="int8", caps=caps,
                              calibration=Calibration(data=str(split), samples=48, batch=8))
    with pytest.raises(InputError, match="at least one calibration batch of 16"):
        build_exported_folder(folder, backend="ort", precision="int8", caps=caps,
                              calibration=Calibration(data=str(split), samples=8, batch=16))
    with pytest.raises(InputError, match="--calib-data"):
        build_exported_folder(folder, backend="ort", precision="int8", caps=caps,
                              calibration=Calibration(data="nosuchkind:/x", samples=8, batch=8))
    with pytest.raises(BackendUnavailableError, match="backend torch: expected a precision it runs"):
        build_exported_folder(folder, backend="torch", precision="int8", caps=caps, calibration=_calibration(split))
    ezvsl = int8_engine.make_int8_engine(tmp_path / "ezvsl", frontend="ezvsl")
    with pytest.raises(InputError, match=r"from the demo front-end, got \(N, 1, 257, 97\)"):  # graphs of another front-end
        manifest = Manifest.read(ezvsl)
        manifest.frontend = "demo"
        manifest.write(ezvsl)
        build_exported_folder(ezvsl, backend="ort", precision="int8", caps=caps, calibration=_calibration(split))
    assert not (folder / "visual.int8.onnx").exists()
