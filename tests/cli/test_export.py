"""`vsslrt export` end to end: an official-layout checkpoint in, a verified engine folder out."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from vsslrt.cli.app import create_app  # noqa: E402
from vsslrt.export.architectures import build_model  # noqa: E402
from vsslrt.export.checkpoints import official_checkpoint  # noqa: E402
from vsslrt.export.parity import realistic_images, realistic_spectrograms  # noqa: E402
from vsslrt.files import sha256_file  # noqa: E402
from vsslrt.manifest import Manifest  # noqa: E402
from vsslrt.models import get_model  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def _limit_threads():
    """Exports run with 2 torch threads at most (CI has 2 cores), as in tests/export."""
    torch.set_num_threads(2)


@pytest.mark.slow
def test_export_from_an_official_checkpoint(tmp_path):
    source = build_model("fnac", seed=7)
    checkpoint = tmp_path / "fnac.pth"
    torch.save(official_checkpoint("fnac", source), checkpoint)
    out = tmp_path / "engine"
    result = CliRunner().invoke(create_app(), ["export", "--model", "fnac", "--checkpoint", str(checkpoint),
                                               "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "parity fused.fp32" in result.output

    manifest = Manifest.read(out)
    manifest.verify_files(out)
    assert not manifest.checkpoint.random_init
    assert manifest.checkpoint.sha256 == sha256_file(checkpoint)
    assert manifest.checkpoint.layout == "'model' with 'module.' prefixes"
    assert {g.file for g in manifest.graphs} == {"visual.onnx", "audio.onnx", "model.onnx"}
    assert manifest.frontend == "fnac" and manifest.thresholds["maxq3"].value == pytest.approx(0.5538)

    # The graphs carry the checkpoint's weights, not the seed-0 initialisation.
    spec = get_model("fnac")
    image = realistic_images(1, seed=3)
    audio = realistic_spectrograms(1, spec.audio_shape, spec.frontend, seed=3)
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(["map"], {"image": image, "audio": audio})[0]
    with torch.no_grad():
        want = source.reference_map(torch.from_numpy(image), torch.from_numpy(audio)).numpy()
    assert np.abs(got - want).max() <= 1e-4


@pytest.mark.parametrize("args", [[], ["--checkpoint", "x.pth", "--random-init"]])
def test_checkpoint_xor_random_init(tmp_path, args):
    proc = subprocess.run(
        [sys.executable, "-m", "vsslrt", "export", "--model", "ezvsl", "--out", str(tmp_path / "o"), *args],
        capture_output=True, text=True,
    )
    assert proc.returncode == 1
    line = proc.stderr.strip()
    assert line.startswith("input error: export: expected exactly one of --checkpoint PATH or --random-init")
    assert "\n" not in line and "Traceback" not in proc.stderr


def test_wrong_checkpoint_is_one_clear_line(tmp_path):
    checkpoint = tmp_path / "ezvsl.pth"
    torch.save(official_checkpoint("ezvsl", build_model("ezvsl")), checkpoint)
    proc = subprocess.run(
        [sys.executable, "-m", "vsslrt", "export", "--model", "ssltie", "--checkpoint", str(checkpoint),
         "--out", str(tmp_path / "o")],
        capture_output=True, text=True,
    )
    assert proc.returncode == 1
    line = proc.stderr.strip()
    assert line.startswith(f"input error: {checkpoint}: expected a checkpoint of ssltie that loads strictly")
    assert "looks like a checkpoint of ezvsl / fnac" in line and "Hint: pass --model ezvsl" in line
    assert "\n" not in line
