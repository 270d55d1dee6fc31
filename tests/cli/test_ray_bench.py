"""`vsslrt bench --ray` on a local Ray instance (2 CPUs): an actor's error comes back as one vsslrt error.

Needs the `dist` extra (`pip install 'vsslrt[dist]'`); skipped otherwise.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'vsslrt[dist]' to run the distributed tests")
pytest.importorskip("ray.data", reason="Ray Data is not installed: pip install 'vsslrt[dist]'")

IS3_MINI = Path(os.environ.get("VSSLRT_IS3_MINI", Path(__file__).resolve().parents[2].parent / "shared" / "data" / "is3-mini"))
pytestmark = [
    pytest.mark.skipif(not IS3_MINI.is_dir(), reason=f"the is3-mini fixture is not at {IS3_MINI}"),
    pytest.mark.slow,
    # Ray Data reads its own deprecated settings when it logs its context; nothing vsslrt can change.
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*"),
]


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance for the module; run_bench_ray attaches to it and leaves it running."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def test_cli_ray_reports_an_actors_error_as_one_vsslrt_error(local_ray, engine, tmp_path):
    """`--ray` alone attaches to the running instance; an unreadable clip met on an actor comes back
    as the DataError naming the file, not as Ray's wrapper."""
    from vsslrt.cli.app import create_app
    from vsslrt.errors import DataError

    data = tmp_path / "is3"
    shutil.copytree(IS3_MINI, data)
    (data / "audio_wav" / "lion_cat_872_cat.wav").write_bytes(b"RIFF not really a wav")
    result = CliRunner().invoke(create_app(), [
        "bench", "--engine", str(engine), "--dataset", "is3", "--data-dir", str(data), "--out", str(tmp_path / "run"),
        "--batch", "4", "--no-baselines", "--ray", "--ray-block", "8", "--json"])
    assert isinstance(result.exception, DataError), result.output
    assert "lion_cat_872_cat.wav" in str(result.exception)
    assert "Traceback" not in str(result.exception) and not (tmp_path / "run" / "metrics.json").exists()

