"""`vsslrt bench --ray`: a bare --ray means a local instance; Ray options without --ray are refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vsslrt.cli.commands.bench import with_optional_value
from vsslrt.errors import InputError

IS3_MINI = Path(os.environ.get("VSSLRT_IS3_MINI", Path(__file__).resolve().parents[2].parent / "shared" / "data" / "is3-mini"))


def test_bare_ray_option_means_local():
    assert with_optional_value(["--ray"], "--ray", "local") == ["--ray", "local"]
    assert with_optional_value(["--ray", "--json"], "--ray", "local") == ["--ray", "local", "--json"]
    assert with_optional_value(["--ray", "head:6379", "--json"], "--ray", "local") == ["--ray", "head:6379", "--json"]
    assert with_optional_value(["--ray=auto"], "--ray", "local") == ["--ray=auto"]
    assert with_optional_value(["--", "--ray"], "--ray", "local") == ["--", "--ray"]


@pytest.mark.parametrize("extra, message", [
    (["--ray-block", "8"], "expected --ray"),
])
def test_cli_refuses_ray_misuse(engine, tmp_path, extra, message):
    from vsslrt.cli.app import create_app

    result = CliRunner().invoke(create_app(), ["bench", "--engine", str(engine), "--dataset", "is3", "--data-dir",
                                               str(IS3_MINI), "--out", str(tmp_path / "run"), *extra])
    assert isinstance(result.exception, InputError), result.output
    assert message in str(result.exception)

