"""`vsslrt data synth`: a written split equals the generator; bad input is one line."""

from __future__ import annotations

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from vsslrt.cli.app import create_app
from vsslrt.data import synth
from vsslrt.errors import InputError


def test_cli_writes_a_split(tmp_path):
    out = tmp_path / "cli"
    result = CliRunner().invoke(create_app(), ["data", "synth", "--out", str(out), "--n", "4", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert "wrote 4 records" in result.output
    records = synth.read_manifest(out)
    assert len(records) == 4
    reference = synth.generate_scene(3, "test", 0)
    assert np.array_equal(np.asarray(Image.open(out / records[0]["image"])), reference.image)



def test_cli_reports_bad_input_in_one_line(tmp_path):
    result = CliRunner().invoke(create_app(), ["data", "synth", "--out", str(tmp_path / "o"), "--n", "5"])
    assert result.exit_code != 0
    assert isinstance(result.exception, InputError)
    assert "even integer" in str(result.exception)

