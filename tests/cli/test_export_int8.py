"""`vsslrt export --precision int8`: export, then the int8 path of `vsslrt build` with the same options.

The exporter is replaced by a function that writes an existing engine folder (a shipped demo model, or
the tiny int8 engine of tests/models/int8_engine.py) into --out, so the rest runs for real: calibration
on a small synthetic split, quantization, ONNX Runtime on the CPU, parity and the accuracy gate.
"""

from __future__ import annotations

import importlib.util
import shutil
from enum import Enum
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytest.importorskip("onnxruntime")
pytest.importorskip("torch")  # `vsslrt export` refuses to start without the export extra

from vsslrt.cli.app import create_app  # noqa: E402
from vsslrt.cli.commands.export import ExportChoice  # noqa: E402
from vsslrt.errors import BackendUnavailableError, EngineBuildError, InputError  # noqa: E402
from vsslrt.manifest import Manifest  # noqa: E402
from vsslrt.models import DEMO_ASSETS  # noqa: E402

TESTS = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("vsslrt_test_export_int8_engine", TESTS / "models" / "int8_engine.py")
int8_engine = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(int8_engine)

LOOSE = ["--gate-max-delta", "100", "--gate-min-argmax", "0"]


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    return int8_engine.synth_split(tmp_path_factory.mktemp("calib") / "split")


class FolderExport:
    """Stands in for export_model: writes `write(folder)` into the export folder; records each call."""

    def __init__(self, write) -> None:
        self.write = write
        self.calls: list[dict] = []

    def __call__(self, name, folder, checkpoint, **kwargs) -> Manifest:
        self.calls.append({"name": name, "checkpoint": checkpoint, **kwargs})
        folder = Path(folder)
        self.write(folder)
        return Manifest.read(folder)


def _demo(name):
    def write(folder: Path) -> None:
        shutil.copytree(DEMO_ASSETS / name, folder, dirs_exist_ok=True)
    return write


def _export(monkeypatch, write) -> FolderExport:
    fake = FolderExport(write)
    monkeypatch.setattr("vsslrt.export.pipeline.export_model", fake)
    return fake


def _invoke(out, *args):
    return CliRunner().invoke(create_app(), ["export", "--model", "ezvsl", "--random-init", "--out", str(out),
                                             "--precision", "int8", *args])


def test_export_int8_exports_then_quantizes_and_gates_a_demo_model(tmp_path, monkeypatch, split):
    fake = _export(monkeypatch, _demo("demo-pos"))
    out = tmp_path / "demo-pos"
    result = _invoke(out, "--backend", "ort", "--calib-data", str(split), "--calib-samples", "16",
                     "--gate-samples", "16", "--opset", "18", "--ignore-unexpected-keys", *LOOSE)
    assert result.exit_code == 0, result.output
    # The export ran once, fp32 (the int8 graphs are made from it), with the export's own options.
    (call,) = fake.calls
    assert call["precision"] == "fp32" and call["opset"] == 18 and call["ignore_unexpected_keys"] is True
    manifest = Manifest.read(out)
    manifest.verify_files(out)
    assert {g.file for g in manifest.graphs if g.precision == "int8"} == {"visual.int8.onnx", "audio.int8.onnx"}
    assert manifest.quantization["visual"]["samples"] == 16 and manifest.quantization["visual"]["scheme"] == "ort-cpu"
    assert manifest.backend["backend"] == "ort" and manifest.backend["precision"] == "int8"
    assert manifest.gates["int8"]["n_samples"] == 16
    assert "visual.int8.onnx" in result.output and "parity engine.split.int8" in result.output
    assert "gate int8 on ort vs ort fp32: accuracy gate passed on 16 held-back samples" in result.output


def test_export_int8_always_exports_afresh(tmp_path, monkeypatch, split):
    """Unlike `vsslrt build`, which keeps an intact export of the same model, `vsslrt export` always exports."""
    fake = _export(monkeypatch, lambda folder: int8_engine.make_int8_engine(folder))
    args = ["--backend", "ort", "--calib-data", str(split), "--calib-samples", "16", "--gate-samples", "8", *LOOSE]
    assert _invoke(tmp_path / "eng", *args).exit_code == 0
    result = _invoke(tmp_path / "eng", *args)
    assert result.exit_code == 0, result.output
    assert len(fake.calls) == 2


@pytest.mark.parametrize("args, error, message", [
    (["--calib-samples", "8"], InputError, "--calib-samples: expected at least one calibration batch of 16 samples, got 8"),
    (["--calib-data", "nosuchkind:/x"], InputError, "--calib-data: expected 'synth', KIND:DIR"),
    (["--backend", "torch"], BackendUnavailableError,
     "backend torch: expected a precision it runs (fp32), got int8. Hint: build int8 for ort, trt, ort-cuda, ort-trt"),
    (["--gate-min-argmax", "1.5"], InputError, "gate: expected the minimum argmax agreement in [0, 1], got 1.5"),
])
def test_bad_int8_options_are_one_line_errors_before_the_export(tmp_path, monkeypatch, args, error, message):
    fake = _export(monkeypatch, _demo("demo-pos"))
    result = _invoke(tmp_path / "out", *args)
    assert isinstance(result.exception, error), result.output
    line = result.exception.one_line()
    assert message in line and "\n" not in line
    assert fake.calls == []  # refused before minutes of export
    assert not (tmp_path / "out").exists()


def test_calibration_and_backend_options_need_int8(tmp_path, monkeypatch):
    fake = _export(monkeypatch, _demo("demo-pos"))
    runner = CliRunner()
    base = ["export", "--model", "ezvsl", "--random-init", "--out", str(tmp_path / "o")]
    result = runner.invoke(create_app(), [*base, "--precision", "fp16", "--calib-samples", "64"])
    assert isinstance(result.exception, InputError)
    assert "export: expected --calib-*/--gate-* options only with --precision int8, got fp16." in str(result.exception)
    result = runner.invoke(create_app(), [*base, "--precision", "both", "--calib-fp32-stem"])
    assert isinstance(result.exception, InputError)
    assert "export: expected --calib-fp32-stem only with --precision int8, got both." in str(result.exception)
    result = runner.invoke(create_app(), [*base, "--backend", "ort"])
    assert isinstance(result.exception, InputError)
    assert "export: expected --backend only with --precision int8, got fp32." in str(result.exception)
    assert fake.calls == []


def test_a_failed_gate_is_one_line_and_leaves_the_fp32_export(tmp_path, monkeypatch, split):
    _export(monkeypatch, lambda folder: int8_engine.make_int8_engine(folder))
    out = tmp_path / "eng"
    result = _invoke(out, "--backend", "ort", "--calib-data", str(split), "--calib-samples", "16",
                     "--gate-samples", "16", "--gate-max-delta", "0", "--gate-min-argmax", "1")
    assert isinstance(result.exception, EngineBuildError), result.output
    line = result.exception.one_line()
    assert "\n" not in line and "argmax agreement" in line and "16 held-back samples" in line
    assert "--calib-samples" in line  # the hint names the fixes
    manifest = Manifest.read(out)  # the export's manifest, as it was before the int8 step
    assert manifest.precisions == ("fp32",) and not manifest.gates and not manifest.backend


def test_calibration_from_another_frontend_is_one_line(tmp_path, monkeypatch, split):
    """Graphs made for the ezvsl front-end, a manifest that names the demo one: the calibration inputs
    shape is refused, naming the front-end."""
    def write(folder: Path) -> None:
        int8_engine.make_int8_engine(folder, frontend="ezvsl")
        manifest = Manifest.read(folder)
        manifest.frontend = "demo"
        manifest.write(folder)

    _export(monkeypatch, write)
    result = _invoke(tmp_path / "eng", "--backend", "ort", "--calib-data", str(split), "--calib-samples", "16",
                     "--gate-samples", "8")
    assert isinstance(result.exception, InputError), result.output
    line = result.exception.one_line()
    assert "calibration set for 'audio': expected inputs of shape (N, 1, 257, 200) from the demo front-end, got (N, 1, 257, 97)" in line
    assert "\n" not in line


def test_the_export_precisions_are_the_exporters_plus_int8():
    from vsslrt.export.pipeline import PRECISION_CHOICES
    from vsslrt.pipeline.build import BUILD_PRECISIONS

    assert [c.value for c in ExportChoice] == [*PRECISION_CHOICES, "int8"]
    assert "int8" in BUILD_PRECISIONS and issubclass(ExportChoice, Enum)
