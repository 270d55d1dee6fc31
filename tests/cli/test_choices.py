"""Choice options: built from the tables that own them, refused as usage errors (exit 2) before any work."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from vsslrt.cli import _options
from vsslrt.cli.app import create_app
from vsslrt.cli.commands import calibrate as calibrate_command
from vsslrt.cli.commands import data as data_command
from vsslrt.cli.commands import localize as localize_command
from vsslrt.cli.commands.export import ExportPrecision


def values(choice) -> list[str]:
    return [member.value for member in choice]


def test_choices_are_the_tables():
    from vsslrt.data.datasets import DATASET_KINDS
    from vsslrt.engine.backends import CHOICES
    from vsslrt.eval.config import PROTOCOLS
    from vsslrt.eval.interp import INTERPOLATIONS
    from vsslrt.manifest import PRECISIONS

    assert values(_options.Backend) == list(CHOICES)
    assert values(_options.Protocol) == list(PROTOCOLS)
    assert values(_options.Interp) == list(INTERPOLATIONS)
    assert values(_options.Precision) == list(PRECISIONS)
    assert values(_options.DatasetKind) == list(DATASET_KINDS)
    assert _options.Backend("ort-cuda") is _options.Backend.ort_cuda and _options.Backend.ort_cuda == "ort-cuda"


def test_choices_kept_in_the_cli_agree_with_the_pipeline():
    """Rule, Distribution, Split, MapSize and the export precisions are spelled out in the CLI (their
    modules are too heavy for --help); they must list exactly what the pipeline accepts."""
    from vsslrt.data.synth import SPLITS
    from vsslrt.export.pipeline import PRECISION_CHOICES
    from vsslrt.pipeline.calibrate import DISTRIBUTIONS, RULES
    from vsslrt.pipeline.localize import MAP_SIZES

    assert values(calibrate_command.Rule) == list(RULES)
    assert values(calibrate_command.Distribution) == list(DISTRIBUTIONS)
    assert sorted(values(data_command.Split)) == sorted(SPLITS)
    assert sorted(values(localize_command.MapSize)) == sorted(MAP_SIZES)
    assert values(ExportPrecision) == list(PRECISION_CHOICES)


def test_calibration_methods_agree_with_the_quantizer():
    pytest.importorskip("onnxruntime")
    from vsslrt.export.quantize import CALIBRATION_METHODS

    assert values(_options.CalibMethod) == list(CALIBRATION_METHODS)


def test_unknown_backend_is_a_usage_error_before_the_run(engine, tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(create_app(), ["bench", "--engine", str(engine), "--dataset", "is3", "--data-dir",
                                               str(tmp_path / "is3"), "--out", str(out), "--backend", "ortt"])
    assert result.exit_code == 2, result.output
    assert "'ortt' is not one of" in result.output and "'ort-cuda'" in result.output
    assert not out.exists()


def test_unknown_backend_of_the_demo_generates_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("VSSLRT_CACHE", str(tmp_path / "cache"))
    result = CliRunner().invoke(create_app(), ["bench", "--limit", "4", "--out", str(tmp_path / "run"),
                                               "--backend", "ortt"])
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "cache").exists() and not (tmp_path / "run").exists()


@pytest.mark.parametrize("args", [
    ["bench", "--engine", "e", "--dataset", "is4", "--data-dir", "d"],
    ["bench", "--engine", "e", "--dataset", "is3", "--data-dir", "d", "--precision", "fp64"],
    ["bench", "--engine", "e", "--dataset", "is3", "--data-dir", "d", "--interp", "nearest"],
    ["localize", "--engine", "e", "--calibration", "c", "--backend", "tensorrt", "a.jpg", "a.wav"],
    ["build", "--model", "ezvsl", "--random-init", "--out", "o", "--backend", "ortt"],
    ["metrics", "maps.npz", "--protocol", "reference"],
])
def test_unknown_choices_are_usage_errors(args):
    result = CliRunner().invoke(create_app(), args)
    assert result.exit_code == 2, result.output
    assert "is not one of" in result.output


def test_every_help_is_light():
    """`vsslrt COMMAND --help` imports no backend and no pipeline module, for every command."""
    code = (
        "import json, sys\n"
        "from vsslrt.cli.app import create_app\n"
        "for command in (['bench'], ['build'], ['calibrate'], ['data', 'synth'], ['doctor'], ['export'],\n"
        "                ['localize'], ['metrics']):\n"
        "    try:\n"
        "        create_app()([*command, '--help'], standalone_mode=False)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = ('tensorrt', 'cupy', 'onnxruntime', 'torch', 'rich.table')\n"
        "print(json.dumps([m for m in sys.modules if m in heavy or m.startswith('vsslrt.pipeline')]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
