"""`vsslrt bench` with no arguments: the built-in synthetic benchmark of the two shipped demo models.

The CLI runs for real on the first 40 records of the synthetic test split (generated into a
temporary cache); the TensorRT path builds the demos' engines through the stand-in modules of
tests/engine/_fakes.py.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vsslrt.cli._errors import format_error
from vsslrt.cli.app import create_app
from vsslrt.pipeline.demo import DEMO_MODELS, demo_engine_dirs, demo_engines
from vsslrt.errors import InputError
from vsslrt.manifest import Manifest

pytest.importorskip("onnxruntime")

_spec = importlib.util.spec_from_file_location(
    "vsslrt_test_demo_fakes", Path(__file__).resolve().parents[1] / "engine" / "_fakes.py")
fakes = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fakes)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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


def test_onnx_runtime_runs_the_shipped_folders_as_they_are(tmp_path):
    assert demo_engines("ort", batch=50, cache=tmp_path) == demo_engine_dirs()
    assert not any(tmp_path.iterdir())


def test_tensorrt_engines_are_built_once_in_the_cache_never_in_the_package(tmp_path):
    shipped = {p: _sha(p / "manifest.json") for p in demo_engine_dirs()}
    cupy = fakes.make_fake_cupy()
    trt = fakes.make_fake_tensorrt("11.4.0.106", cupy=cupy)
    options = dict(caps=fakes.capabilities(with_trt=True), trt=trt, cupy=cupy)

    folders = demo_engines("trt", batch=50, cache=tmp_path, **options)
    assert [f.parent.parent for f in folders] == [tmp_path / "demo-engines"] * 2
    assert [f.name for f in folders] == list(DEMO_MODELS)  # the run's engine names stay the models' names
    assert trt.record["builds"] == 6  # visual, audio and fused graphs of each model
    for folder in folders:
        manifest = Manifest.read(folder)
        manifest.verify_files(folder)
        assert manifest.backend["backend"] == "trt" and manifest.backend["batch_profile"] == "1:50:64"
        assert all(f.passed for k, f in manifest.parity.items() if k.startswith("engine."))
        assert manifest.thresholds["maxf"].value > 0  # the universal threshold travels with the copy

    assert demo_engines("trt", batch=50, cache=tmp_path, **options) == folders
    assert trt.record["builds"] == 6  # reused through the engine cache
    assert {p: _sha(p / "manifest.json") for p in demo_engine_dirs()} == shipped
