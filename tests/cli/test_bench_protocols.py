"""`vsslrt bench --protocols / --examples`: presets asked of the CLI reach the run, one-line refusals."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vsslrt.cli.app import create_app

HERE = Path(__file__).resolve().parent
IS3_MINI = Path(os.environ.get("VSSLRT_IS3_MINI", HERE.parents[1].parent / "shared" / "data" / "is3-mini"))
pytestmark = pytest.mark.skipif(not IS3_MINI.is_dir(), reason=f"the is3-mini fixture is not at {IS3_MINI}")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    sys.path.insert(0, str(HERE.parent / "pipeline"))
    from tiny_engine import make_tiny_engine

    return make_tiny_engine(tmp_path_factory.mktemp("engines") / "tiny")


def _bench(tiny: Path, out: Path, *extra: str):
    return CliRunner().invoke(create_app(), [
        "bench", "--engine", str(tiny), "--dataset", "is3", "--data-dir", str(IS3_MINI), "--out", str(out),
        "--limit", "4", "--batch", "2", "--no-baselines", "--workers", "1", *extra])


def test_cli_protocols_and_examples_reach_the_run(tiny, tmp_path):
    result = _bench(tiny, tmp_path / "run", "--protocols", "retrieval:paper", "--examples", "1", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert doc["settings"]["protocols"] == "retrieval:paper" and doc["settings"]["examples"] == 1
    assert doc["engines"]["tiny"]["protocols"]["retrieval"]["provenance"]["mode"] == "paper"
    assert (tmp_path / "run" / "examples" / "tiny" / "worst.json").is_file()


def test_cli_paper_run_prints_the_missing_reference_keys(tiny, tmp_path):
    result = _bench(tiny, tmp_path / "run", "--protocol", "paper", "--repeats", "1", "--no-ogl")
    assert result.exit_code == 0, result.output
    assert "reference keys missing" in result.output and "_OGL" in result.output


def test_cli_protocol_the_dataset_cannot_serve_is_one_line(tiny, tmp_path):
    import subprocess

    proc = subprocess.run([sys.executable, "-m", "vsslrt", "bench", "--engine", str(tiny), "--dataset", "is3",
                           "--data-dir", str(IS3_MINI), "--out", str(tmp_path / "run"), "--protocols", "avsbench"],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "protocol avsbench: expected a dataset of kind avsbench-s4" in lines[0], proc.stderr
    assert not list((tmp_path / "run").glob("shards/*/part-*.npz"))  # refused before the first batch
