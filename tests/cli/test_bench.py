"""`vsslrt bench` with a dataset: a JSON summary, one-line errors, and choices refused before a run."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vsslrt.cli.app import create_app

IS3_MINI = Path(os.environ.get("VSSLRT_IS3_MINI", Path(__file__).resolve().parents[2].parent / "shared" / "data" / "is3-mini"))
pytestmark = pytest.mark.skipif(not IS3_MINI.is_dir(), reason=f"the is3-mini fixture is not at {IS3_MINI}")


def test_cli_bench_runs_and_prints_json(engine, tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(create_app(), [
        "bench", "--engine", str(engine), "--dataset", "is3", "--data-dir", str(IS3_MINI), "--out", str(out),
        "--limit", "4", "--batch", "2", "--json", "--no-baselines"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout[result.stdout.index("{"):])
    assert doc["engines"]["tiny"]["n_samples"] == 4
    assert "pos cIoU@median" in doc["engines"]["tiny"]["summary"]



def test_cli_bench_bad_engine_is_one_line(tmp_path):
    import subprocess

    proc = subprocess.run([sys.executable, "-m", "vsslrt", "bench", "--engine", str(tmp_path / "nope"), "--dataset", "is3",
                           "--data-dir", str(IS3_MINI), "--out", str(tmp_path / "run")], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "nope" in lines[0]

