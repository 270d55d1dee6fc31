"""`vsslrt bench --ray` on a local Ray instance (2 CPUs): an actor's error comes back as one vsslrt error.

Needs the `dist` extra (`pip install 'vsslrt[dist]'`); skipped otherwise.
"""

from __future__ import annotations

import shutil

from typer.testing import CliRunner

from ray_fixtures import IS3_MINI, MARKS, local_ray  # noqa: F401 - local_ray is a fixture (tests/pipeline on the path)

pytestmark = MARKS


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

