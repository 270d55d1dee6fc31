"""`vsslrt metrics`: a working run, and every validation error as one line with exit code 1."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from vsslrt.cli._errors import format_error
from vsslrt.cli.app import create_app
from vsslrt.errors import InputError

PAPER = "max=0.6,max10=0.66,maxq3=0.63"


def save(path: Path, batch: dict, **changes) -> Path:
    fields = {k: v for k, v in batch.items()}
    for key, value in changes.items():
        if value is None:
            fields.pop(key)
        else:
            fields[key] = value
    np.savez(path, **fields)
    return path


def run(*args: str):
    return CliRunner().invoke(create_app(), ["metrics", *map(str, args)])


def assert_input_error(result, *fragments: str) -> str:
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, InputError), repr(result.exception)
    line = format_error(result.exception)
    assert "\n" not in line and line.startswith("input error: ")
    for fragment in fragments:
        assert fragment in line, line
    return line


def test_fixed_run_prints_table_and_writes_reports(tmp_path, batch):
    path = save(tmp_path / "maps.npz", batch)
    result = run(path, "--thresholds", "max=0.6", "--json", tmp_path / "out" / "m.json", "--markdown", tmp_path / "r.md")
    assert result.exit_code == 0, result.output
    assert "median" in result.output and "adaptive" in result.output and "max" in result.output
    report = json.loads((tmp_path / "out" / "m.json").read_text())
    assert report["meta"]["protocol"] == "fixed" and report["meta"]["thresholds"]["max"]["value"] == 0.6
    assert report["metrics"]["n_samples"] == 12.0
    assert "pos/ciou@max" in report["metrics"] and "pos_ogl/ciou@median" in report["metrics"]
    assert (tmp_path / "r.md").read_text().startswith("# vsslrt metrics: maps.npz")


def test_paper_run_uses_reference_keys(tmp_path, batch):
    path = save(tmp_path / "maps.npz", batch)
    result = run(path, "--protocol", "paper", "--thresholds", PAPER, "--interp", "cv2", "--json", tmp_path / "m.json")
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "m.json").read_text())["metrics"]
    assert "pIA_OffScreem_ThrCIoU_Adap" in metrics and "F_Pos_Neg" in metrics and "iiou_adap" in metrics


@pytest.mark.parametrize(
    ("changes", "fragments"),
    [
        ({"noise": None}, ["maps.npz: expected field 'noise' to be present, got fields"]),
        ({"pos": np.zeros((12, 49), np.float32)}, ["field 'pos' to be a 3-D array (N, H, W), got shape (12, 49)"]),
        ({"gt": np.ones((12, 7, 7), bool)}, ["field 'gt' to have shape (N, 224, 224), got (12, 7, 7)"]),
        ({"offscreen": np.zeros((11, 7, 7), np.float32)}, ["field 'offscreen' to hold N=12 samples like 'pos', got 11"]),
        ({"silence": np.zeros((12, 14, 14), np.float32)}, ["map size 7x7 of 'pos', got 14x14"]),
        ("nan", ["field 'noise' to be finite, got NaN or inf in 1 sample(s) (first: sample 2)"]),
        ("inf", ["field 'obj' to be finite"]),
        ("gt3", ["field 'gt' to be binary (bool or 0/1), got values such as [3]"]),
        ("empty", ["field 'gt' to mark at least one pixel, got an empty ground truth for all 12 samples"]),
        ({"group": np.zeros(12, np.float32)}, ["field 'group' to be an integer array of shape (12,)"]),
    ],
)
def test_file_errors(tmp_path, batch, changes, fragments):
    if changes == "nan":
        noise = batch["noise"].copy()
        noise[2, 0, 0] = np.nan
        changes = {"noise": noise}
    elif changes == "inf":
        obj = batch["obj"].copy()
        obj[0, 1, 1] = np.inf
        changes = {"obj": obj}
    elif changes == "gt3":
        changes = {"gt": batch["gt"].astype(np.uint8) * 3}
    elif changes == "empty":
        changes = {"gt": np.zeros_like(batch["gt"])}
    path = save(tmp_path / "maps.npz", batch, **changes)
    line = assert_input_error(run(path), *fragments)
    assert str(path) in line


def test_unreadable_missing_and_npy_files(tmp_path, batch):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"this is not a zip archive")
    assert_input_error(run(bad), f"{bad}: expected a readable .npz archive")
    assert_input_error(run(tmp_path / "nope.npz"), "nope.npz: expected an existing .npz file, got no such file")
    single = tmp_path / "single.npy"
    np.save(single, batch["pos"])
    assert_input_error(run(single), "expected a .npz archive of named fields, got a single .npy array")


@pytest.mark.parametrize(
    ("option", "fragment"),
    [
        ("max0.6", "--thresholds: expected name=value pairs separated by commas, got 'max0.6'"),
        ("max=high", "--thresholds: expected a number for 'max', got 'high'"),
        ("max=0.6,,max10=0.7", "got ''"),
        ("1st=0.5", "expected a threshold name of letters"),
        ("fixed=0.5", "expected a name other than the built-in median, adaptive, fixed, got 'fixed'"),
    ],
)
def test_threshold_option_errors(tmp_path, batch, option, fragment):
    path = save(tmp_path / "maps.npz", batch)
    assert_input_error(run(path, "--thresholds", option), fragment)


def test_paper_mode_needs_the_three_universal_thresholds(tmp_path, batch):
    path = save(tmp_path / "maps.npz", batch)
    assert_input_error(run(path, "--protocol", "paper"), "expected the thresholds max, max10 and maxq3", "got none")
    assert_input_error(run(path, "--protocol", "paper", "--thresholds", "max=0.6"), "got max")


def test_settings_are_checked_before_the_file_is_read(tmp_path):
    # A bad threshold list is reported even when the file does not exist.
    assert_input_error(run(tmp_path / "missing.npz", "--thresholds", "x"), "--thresholds")


def test_console_entry_point_prints_one_line(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"nope")
    proc = subprocess.run([sys.executable, "-m", "vsslrt", "metrics", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("input error: ") and "Traceback" not in proc.stderr


def test_bundled_example_runs():
    example = Path(__file__).resolve().parents[2] / "examples" / "example_maps.npz"
    result = run(example)
    assert result.exit_code == 0, result.output
    assert "64 samples" in result.output
