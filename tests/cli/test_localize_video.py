"""`vsslrt localize --video`: the video mode of the CLI, its summary line and its one-line errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("av")
pytest.importorskip("onnxruntime")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline"))
from scenes import DEMO_SAN, bell_frames, demo_calibration, make_scene_video, read_timeline, write_video  # noqa: E402

from vsslrt.cli._errors import format_error  # noqa: E402
from vsslrt.cli.app import create_app  # noqa: E402


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-video")
    calibration = root / "calibration.json"
    calibration.write_text(json.dumps(demo_calibration()))
    scene = make_scene_video(root / "scene.mp4")
    return root, calibration, scene


def _run(args):
    return CliRunner().invoke(create_app(), args)


def test_video_mode_writes_the_outputs_and_prints_a_summary_line(setup, tmp_path):
    root, calibration, scene = setup
    result = _run(["localize", "--engine", str(DEMO_SAN), "--calibration", str(calibration), "--video",
                   str(scene.path), "--fps", "2", "--smooth", "0.3", "--hysteresis", "0.1", "--threads", "2",
                   "--preset", "ultrafast", "--tune", "zerolatency", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.mp4", "scene.summary.json", "scene.timeline.jsonl"]
    assert "scene.mp4: 12 frames localised over 6.00 s, sounding" in result.output
    assert "segments: 0.00-" in result.output and "x real time" in result.output
    lines = read_timeline(tmp_path / "scene.timeline.jsonl")
    assert len(lines) == 12 and {"score", "sounding", "smoothed_score", "decision", "threshold", "boxes"} <= set(lines[0])
    summary = json.loads((tmp_path / "scene.summary.json").read_text())
    assert summary["smoothing"] == {"tau": 0.3} and summary["hysteresis"]["enter"] > summary["detection_threshold"]
    assert summary["encoding"] == {"video": "libx264", "preset": "ultrafast", "tune": "zerolatency", "audio": "aac"}


def test_one_line_errors(setup, tmp_path):
    root, calibration, scene = setup
    base = ["localize", "--engine", str(DEMO_SAN), "--calibration", str(calibration), "--out", str(tmp_path / "o")]
    silent = write_video(tmp_path / "silent.mp4", bell_frames(5)[0], None, fps=10)
    notes = tmp_path / "notes.txt"
    notes.write_text("x")
    cases = [
        (["--video", str(silent)], "silent.mp4: expected a video with an audio track, got none."),
        (["--video", str(notes)], "notes.txt: expected a video file in a container FFmpeg reads"),
        (["--audio", str(notes)], "localize --audio: expected --video too, got --audio alone."),
        (["--video", str(scene.path), "--folder", str(tmp_path)], "localize --video: expected no other input mode, got --folder."),
        (["--video", str(scene.path), "--fps", "0"], "--fps: expected a positive number of frames per second, got 0.0."),
        (["--video", str(scene.path), "--align", "left"], "stream: expected alignment to be one of centre, trailing, got 'left'."),
        (["--video", str(scene.path), "--preset", "quick"], "--preset: expected one of ultrafast, superfast, veryfast,"),
        (["--video", str(scene.path), "--tune", "zerolatency,fast"], "--tune: expected one or more of film, animation,"),
    ]
    for extra, message in cases:
        result = _run(base + extra)
        assert result.exit_code == 1, (extra, result.output)
        line = format_error(result.exception)
        assert message in line and "\n" not in line.strip(), line
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_truncated_video_writes_valid_outputs_and_fails_with_how_far_it_got(setup, tmp_path):
    root, calibration, _ = setup
    scene = make_scene_video(tmp_path / "full.mkv", container_format="matroska")
    cut = tmp_path / "cut.mkv"
    data = scene.path.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    result = _run(["localize", "--engine", str(DEMO_SAN), "--calibration", str(calibration), "--video", str(cut),
                   "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    line = format_error(result.exception)
    assert "cut.mkv: expected a complete video, got one that stops at" in line and "wrote" in line
    assert (tmp_path / "o" / "cut.mp4").is_file() and np.isfinite(
        json.loads((tmp_path / "o" / "cut.summary.json").read_text())["truncated"]["reached"])
