from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from vsslrt import __version__
from vsslrt.cli._errors import format_error
from vsslrt.cli.app import create_app
from vsslrt.errors import BackendUnavailableError, InputError, missing_extra


def test_version():
    result = CliRunner().invoke(create_app(), ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"vsslrt {__version__}"


def test_help_lists_commands():
    result = CliRunner().invoke(create_app(), ["--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output


def test_error_is_one_line_with_hint():
    err = InputError("maps.npz: expected field 'pos' to be (N, H, W), got (3, 7).", hint="save maps as float32 (N, H, W)")
    line = format_error(err)
    assert "\n" not in line
    assert line.startswith("input error: maps.npz")
    assert "Hint: save maps" in line


def test_missing_extra_names_the_extra():
    err = missing_extra("onnxruntime", "cpu", "run ONNX models")
    assert isinstance(err, BackendUnavailableError)
    assert "pip install 'vsslrt[cpu]'" in format_error(err)


def test_internal_error_mentions_debug():
    assert "VSSLRT_DEBUG=1" in format_error(RuntimeError("boom"))


def test_module_entry_point_exit_code_for_unknown_command():
    proc = subprocess.run([sys.executable, "-m", "vsslrt", "no-such-command"], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
