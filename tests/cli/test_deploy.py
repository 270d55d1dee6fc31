"""`vsslrt calibrate` and `vsslrt localize` through the CLI: outputs, batch mode, one-line errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from vsslrt.cli._errors import format_error
from vsslrt.cli.app import create_app
from vsslrt.errors import DataError, InputError, ManifestMismatchError


def run(*args) -> object:
    return CliRunner().invoke(create_app(), [str(a) for a in args])


def assert_one_line_error(result, kind: type, *fragments: str) -> str:
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, kind), repr(result.exception)
    line = format_error(result.exception)
    assert "\n" not in line
    for fragment in fragments:
        assert fragment in line, line
    return line


def test_calibrate_writes_the_file_and_reports_the_holdout(fit_run, holdout_run, tmp_path):
    out = tmp_path / "cal.json"
    result = run("calibrate", fit_run, "--rule", "quantile", "--distribution", "pos", "--q", "0.75",
                 "--holdout", holdout_run, "--out", out)
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["localization"]["rule"] == "quantile" and doc["holdout"]["n_samples"] == 8
    assert "holdout" in result.output and f"wrote {out}" in result.output


def test_calibrate_errors(fit_run, tmp_path):
    assert_one_line_error(run("calibrate", tmp_path), InputError, "expected a run folder written by `vsslrt bench`")
    assert_one_line_error(run("calibrate", fit_run, "--engine", "other"), InputError, "got 'other'")
    assert_one_line_error(run("calibrate", fit_run, "--q", "0.5"), InputError, "only with --rule quantile")


def test_localize_single_writes_json_png_and_a_verdict(engine, calibration_file, fit_pairs, tmp_path):
    image, audio = fit_pairs[0]
    result = run("localize", "--engine", engine, "--calibration", calibration_file, image, audio,
                 "--out", tmp_path, "--threads", "1")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{image.stem}: ") and "sounding" in lines[0]
    doc = json.loads((tmp_path / f"{image.stem}.json").read_text())
    assert doc["image"] == str(image) and "score" in doc and "latency" not in doc
    assert (tmp_path / f"{image.stem}.png").stat().st_size > 1000


def test_localize_profile(engine, calibration_file, fit_pairs, tmp_path):
    result = run("localize", "--engine", engine, "--calibration", calibration_file, *fit_pairs[0],
                 "--out", tmp_path, "--profile", "--iterations", "3", "--threads", "1")
    assert result.exit_code == 0, result.output
    assert "warm-up excluded" in result.output and "p50" in result.output and "p99" in result.output
    doc = json.loads((tmp_path / f"{fit_pairs[0][0].stem}.json").read_text())
    assert doc["latency"]["iterations"] == 3


def test_localize_batch_folder_and_manifest(engine, calibration_file, fit_pairs, tmp_path):
    folder = tmp_path / "shots"
    folder.mkdir()
    for image, audio in fit_pairs[:3]:
        shutil.copy(image, folder)
        shutil.copy(audio, folder)
    out = tmp_path / "out"
    result = run("localize", "--engine", engine, "--calibration", calibration_file, "--folder", folder,
                 "--out", out, "--batch", "2", "--threads", "1")
    assert result.exit_code == 0, result.output
    summary = [json.loads(line) for line in (out / "summary.jsonl").read_text().splitlines()]
    assert [s["name"] for s in summary] == sorted(image.stem for image, _ in fit_pairs[:3])
    assert all((out / f"{s['name']}.json").is_file() and (out / f"{s['name']}.png").is_file() for s in summary)
    assert "3 pairs:" in result.output

    manifest = tmp_path / "pairs.jsonl"
    manifest.write_text("".join(json.dumps({"image": str(i), "audio": str(a), "name": f"p{k}"}) + "\n"
                                for k, (i, a) in enumerate(fit_pairs[:2])))
    result = run("localize", "--engine", engine, "--calibration", calibration_file, "--manifest", manifest,
                 "--out", out, "--threads", "1")
    assert result.exit_code == 0, result.output
    assert (out / "p0.png").is_file() and (out / "p1.json").is_file()


def test_localize_batch_stops_at_an_unreadable_pair_or_skips_it_with_skip_bad(engine, calibration_file, fit_pairs,
                                                                              tmp_path):
    folder = tmp_path / "shots"
    folder.mkdir()
    for image, audio in fit_pairs[:2]:
        shutil.copy(image, folder)
        shutil.copy(audio, folder)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    shutil.copy(fit_pairs[0][1], folder / f"broken{fit_pairs[0][1].suffix}")
    base = ("localize", "--engine", engine, "--calibration", calibration_file, "--folder", folder, "--batch", "2",
            "--threads", "1")
    assert_one_line_error(run(*base, "--out", tmp_path / "stop"), DataError, "broken.jpg")

    out = tmp_path / "out"
    result = run(*base, "--out", out, "--skip-bad")
    assert result.exit_code == 0, result.output
    assert "3 pairs:" in result.output and "1 skipped" in result.output
    summary = {entry["name"]: entry for entry in map(json.loads, (out / "summary.jsonl").read_text().splitlines())}
    assert set(summary) == {"broken", *(image.stem for image, _ in fit_pairs[:2])}
    assert "broken.jpg" in summary["broken"]["skipped"] and not (out / "broken.json").exists()
    assert all((out / f"{image.stem}.png").is_file() and "sounding" in summary[image.stem] for image, _ in fit_pairs[:2])


def test_localize_bad_inputs_are_one_line_errors(engine, other_engine, calibration_file, fit_pairs, tmp_path):
    image, audio = fit_pairs[0]
    bad_image = tmp_path / "bad.jpg"
    bad_image.write_bytes(b"\xff\xd8 truncated")
    bad_audio = tmp_path / "bad.wav"
    bad_audio.write_text("not audio")
    base = ("localize", "--calibration", calibration_file, "--out", tmp_path / "out", "--threads", "1")
    assert_one_line_error(run(*base, "--engine", engine, bad_image, audio), DataError, "bad.jpg")
    assert_one_line_error(run(*base, "--engine", engine, image, bad_audio), DataError, "bad.wav")
    line = assert_one_line_error(run(*base, "--engine", other_engine, image, audio), ManifestMismatchError,
                                 "manifest sha256")
    assert line.startswith("mismatch: ")
    assert_one_line_error(run(*base, "--engine", tmp_path / "none", image, audio), InputError, "no such folder")
    assert_one_line_error(run(*base, "--engine", engine, image), InputError, "only IMAGE")
    assert_one_line_error(run(*base, "--engine", engine, image, audio, "--folder", tmp_path), InputError,
                          "one input mode")


def test_subprocess_error_has_no_traceback(calibration_file, fit_pairs, tmp_path):
    env = {**os.environ, "VSSLRT_DEBUG": ""}
    proc = subprocess.run(
        [sys.executable, "-m", "vsslrt", "localize", "--engine", str(tmp_path / "missing"), "--calibration",
         str(calibration_file), *map(str, fit_pairs[0])],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("input error: ") and "missing" in lines[0]
    assert not Path(tmp_path / "localized").exists()
