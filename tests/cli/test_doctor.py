"""`vsslrt doctor`: the capability report as JSON and as a table."""

from __future__ import annotations

import json
import sys

from typer.testing import CliRunner

from vsslrt.cli.app import create_app


def test_doctor_json_on_this_machine(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    result = CliRunner().invoke(create_app(), ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["tensorrt_installed"] == {"ok": False, "reason": "package not installed (pip install 'vsslrt[trt]')"}
    assert report["tensorrt_usable"] is False
    assert "CPUExecutionProvider" in report["ort_providers"]
    assert report["cpu"]["usable_cores"] >= 1
    assert report["auto_backend"]["backend"] in ("ort", "ort-cuda")



def test_doctor_table(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    result = CliRunner().invoke(create_app(), ["doctor"])
    assert result.exit_code == 0, result.output
    for row in ("TensorRT installed", "TensorRT libraries load", "CUDA device usable", "ONNX Runtime", "--backend auto"):
        assert row in result.output
    assert "'vsslrt[trt]'" in result.output  # pip extras survive Rich's markup

