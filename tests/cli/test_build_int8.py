"""`vsslrt build --precision int8 --calib-* --gate-*`: the options become one Calibration for the pipeline."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from vsslrt.cli.app import create_app


def _capture(monkeypatch):
    calls = []

    class Report:
        folder, model, backend, backend_reason, exported, engines, parity, gate = Path("."), "ezvsl", "ort", "-", False, (), {}, None

    def fake(folder, **kwargs):
        calls.append(kwargs)
        Report.folder = Path(folder)
        return Report

    monkeypatch.setattr("vsslrt.pipeline.build.build_exported_folder", fake)
    return calls


def test_int8_options_reach_the_build_as_one_calibration(tmp_path, monkeypatch):
    calls = _capture(monkeypatch)
    result = CliRunner().invoke(create_app(), [
        "build", "--engine", str(tmp_path), "--backend", "ort", "--precision", "int8", "--calib-data", "is3:/data/IS3",
        "--calib-samples", "64", "--calib-method", "minmax", "--gate-samples", "32", "--gate-max-delta", "0.5",
        "--gate-min-argmax", "0.9", "--calib-fp32-stem"])
    assert result.exit_code == 0, result.output
    calibration = calls[0]["calibration"]
    assert (calibration.data, calibration.samples, calibration.method, calibration.gate_samples) == (
        "is3:/data/IS3", 64, "minmax", 32)
    assert calibration.fp32_stem is True
    assert (calibration.gate.max_delta, calibration.gate.min_argmax_agreement) == (0.5, 0.9)


def test_int8_without_options_uses_the_documented_defaults(tmp_path, monkeypatch):
    calls = _capture(monkeypatch)
    result = CliRunner().invoke(create_app(), ["build", "--engine", str(tmp_path), "--precision", "int8"])
    assert result.exit_code == 0, result.output
    from vsslrt.pipeline.int8 import Calibration

    assert calls[0]["calibration"] == Calibration()


def test_fp32_has_no_gate_and_refuses_its_options(tmp_path, monkeypatch):
    calls = _capture(monkeypatch)
    assert CliRunner().invoke(create_app(), ["build", "--engine", str(tmp_path)]).exit_code == 0
    assert "calibration" not in calls[0]
    result = CliRunner().invoke(create_app(), ["build", "--engine", str(tmp_path), "--calib-samples", "64"])
    assert result.exit_code != 0
    assert "only with --precision int8 or fp16" in str(result.exception)
    for precision in ("fp32", "fp16"):  # the stem option means something only to int8
        result = CliRunner().invoke(create_app(), ["build", "--engine", str(tmp_path), "--precision", precision,
                                                   "--calib-fp32-stem"])
        assert result.exit_code != 0
        assert f"expected --calib-fp32-stem only with --precision int8, got {precision}" in str(result.exception)


def test_a_bad_gate_limit_is_one_line_naming_the_option(tmp_path, monkeypatch):
    _capture(monkeypatch)
    result = CliRunner().invoke(create_app(), ["build", "--engine", str(tmp_path), "--precision", "int8",
                                               "--gate-min-argmax", "1.5"])
    assert result.exit_code != 0
    assert "--gate-min-argmax" in str(result.exception)
