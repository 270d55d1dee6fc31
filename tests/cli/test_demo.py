"""`vsslrt bench` with no arguments: the built-in synthetic benchmark of the two shipped demo models.

The CLI runs for real on the first 40 records of the synthetic test split (generated into a
temporary cache), then the run is calibrated and the shipped model deployed with it.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from vsslrt.cli._errors import format_error
from vsslrt.cli.app import create_app
from vsslrt.errors import InputError
from vsslrt.pipeline.demo import DEMO_MODELS, demo_engine_dirs

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """`vsslrt bench --limit 40` (no engines, no dataset) into a fresh cache: (result, run folder, cache)."""
    root = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VSSLRT_CACHE", str(root / "cache"))
        result = CliRunner().invoke(create_app(), ["bench", "--limit", "40", "--out", str(root / "run")])
        again = CliRunner().invoke(create_app(), ["bench", "--limit", "40", "--out", str(root / "run2")])
    return result, again, root / "run", root / "cache"



def test_bench_without_arguments_shows_the_finding_side_by_side(demo_run):
    result, again, out, _ = demo_run
    assert result.exit_code == 0, result.output
    assert "Generating the synthetic test split" in result.output
    assert "What this shows" in result.output and "demo-pos" in result.output and "demo-san" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    engines = {name: e["metrics"] for name, e in metrics["engines"].items()}
    assert set(engines) == set(DEMO_MODELS)
    pos, san = engines["demo-pos"], engines["demo-san"]
    # Each model at its own F-maximising universal threshold (the manifests' maxf). Measured on
    # these 40 records: demo-pos 10.4-10.5% of the image under silence and noise, demo-san 0%.
    for cond in ("silence", "noise"):
        assert pos[f"{cond}/pia@maxf"] >= 5.0, cond
        assert san[f"{cond}/pia@maxf"] <= 1.0, cond
    assert pos["pos/miou@maxf"] >= 28.0 and san["pos/miou@maxf"] >= 28.0
    assert (out / "report.md").is_file() and (out / "shards" / "demo-san" / "checkpoint.npz").is_file()
    assert again.exit_code == 0 and "Generating" not in again.output  # the split is generated once
    assert f"vsslrt calibrate {out} --engine demo-san" in result.output



def test_calibrate_the_demo_run_then_deploy_demo_san(demo_run, tmp_path):
    """The newcomer's next step: calibrate demo-san on the run, then localize with the shipped model."""
    from vsslrt.pipeline.localize import Localizer

    _, _, out, cache = demo_run
    result = CliRunner().invoke(create_app(), ["calibrate", str(out), "--engine", "demo-san"])
    assert result.exit_code == 0, result.output
    calibration = out / "calibration-demo-san.json"
    assert json.loads(calibration.read_text())["fit"]["n_samples"] == 40
    split = next((cache / "synth").glob("*/test-40"))
    record = json.loads((split / "manifest.jsonl").read_text().splitlines()[0])
    silent = tmp_path / "silence.wav"
    import numpy as np
    import soundfile as sf

    sf.write(silent, np.zeros(16000 * 3, dtype=np.float32), 16000)
    with Localizer(demo_engine_dirs()[1], calibration, threads=1) as localizer:
        heard = localizer.localize(split / record["image"], split / record["audio"])
        quiet = localizer.localize(split / record["image"], silent)
    assert heard.sounding and heard.boxes and heard.mask.any()
    assert not quiet.sounding and not quiet.mask.any()



def test_bench_without_arguments_rejects_a_bad_limit(tmp_path, monkeypatch):
    monkeypatch.setenv("VSSLRT_CACHE", str(tmp_path / "cache"))
    result = CliRunner().invoke(create_app(), ["bench", "--limit", "0", "--out", str(tmp_path / "run")])
    assert result.exit_code == 1 and isinstance(result.exception, InputError)
    assert format_error(result.exception).startswith("input error: limit: expected an integer >= 1, got 0.")
    assert not (tmp_path / "cache").exists()

