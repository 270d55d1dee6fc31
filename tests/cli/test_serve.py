"""`vsslrt serve` as a user runs it: a subprocess on a free 127.0.0.1 port (--port 0), one request, SIGTERM, a clean
exit; and the one-line errors of a missing extra and a bad engine."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vsslrt.cli._errors import format_error
from vsslrt.cli.app import create_app

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline"))
from serve_helpers import manifest_calibration, write_pairs  # noqa: E402


def _demo_san() -> Path:
    from vsslrt.pipeline.demo import demo_engine_dirs

    return demo_engine_dirs()[1]


def test_serve_answers_then_stops_cleanly_on_sigterm(tmp_path):
    pytest.importorskip("onnxruntime")
    for module in ("fastapi", "uvicorn", "prometheus_client", "multipart"):
        pytest.importorskip(module)
    httpx = pytest.importorskip("httpx")
    engine = _demo_san()
    calibration = tmp_path / "cal.json"
    calibration.write_text(json.dumps(manifest_calibration(engine)))
    (image, audio), = write_pairs(tmp_path / "pairs", 1)
    command = [sys.executable, "-m", "vsslrt", "serve", "--engine", str(engine), "--calibration", str(calibration),
               "--port", "0", "--max-batch", "4", "--threads", "1", "--drain-seconds", "0.2"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={k: v for k, v in os.environ.items() if k != "VSSLRT_SERVE_TOKEN"})
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True)
    reader.start()
    stdout = []
    try:
        # Port 0: the service binds a free port and prints it (no race with other processes for a port).
        deadline = time.monotonic() + 90
        url = None
        while time.monotonic() < deadline and (url is None or not any("ready (warm-up" in x for x in stdout)):
            try:
                stdout.append(lines.get(timeout=1))
            except queue.Empty:
                assert process.poll() is None, process.stderr.read()
                continue
            match = re.search(r" on (http://127\.0\.0\.1:\d+);", stdout[-1])
            url = match.group(1) if match else url
        assert url is not None, stdout
        assert httpx.get(f"{url}/v1/health", timeout=10).status_code == 200
        answer = httpx.post(f"{url}/v1/localize", timeout=30,
                            files={"image": image.read_bytes(), "audio": audio.read_bytes()})
        assert answer.status_code == 200 and "sounding" in answer.json()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        reader.join(timeout=10)
        while not lines.empty():
            stdout.append(lines.get())
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    assert process.returncode == 0, process.stderr.read()
    assert any("stopped (in-flight requests answered)" in line for line in stdout), stdout


def test_a_missing_serve_extra_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "fastapi", None)
    result = CliRunner().invoke(create_app(), ["serve", "--engine", str(tmp_path), "--calibration", str(tmp_path / "c")])
    assert result.exit_code == 1
    line = format_error(result.exception)
    assert line == ("missing backend: fastapi is not installed, but it is needed to run the localisation service "
                    "(`vsslrt serve`). Hint: pip install 'vsslrt[serve]'")


def test_a_bad_engine_is_one_line(tmp_path):
    pytest.importorskip("fastapi")
    result = CliRunner().invoke(create_app(), ["serve", "--engine", str(tmp_path / "none"),
                                               "--calibration", str(tmp_path / "c.json")])
    assert result.exit_code == 1
    assert format_error(result.exception).startswith("input error: ")
    assert "\n" not in format_error(result.exception)
