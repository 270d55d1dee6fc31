"""The shipped demo models: files match their recorded hashes, graphs load and keep their contracts,
and the two models behave as trained (demo-san stays dark under silence and noise, demo-pos does not).

Behaviour is checked on the first 16 scenes (32 records) of the synthetic test split, generated in
memory. Each bound leaves a margin around the value measured on these records with the shipped
models (the measured values are written next to each bound); retraining the demos means
re-measuring them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from vsslrt.data import synth
from vsslrt.manifest import Manifest

ort = pytest.importorskip("onnxruntime")

DEMO_ROOT = Path(synth.__file__).resolve().parents[1] / "assets" / "demo"
NAMES = ("demo-pos", "demo-san")
N_SCENES = 16


def _session(path: Path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def batch():
    """Inputs of the first test scenes: images per record, and the four audio conditions."""
    from vsslrt.data.frontends import silence_input, spectrogram_inputs
    from vsslrt.data.images import normalize_imagenet
    from vsslrt.data.negatives import noise_signal

    scenes = list(synth.iter_scenes(N_SCENES, seed=synth.DEFAULT_SEED, split="test"))
    rgb = np.stack([s.image for s in scenes for _ in s.objects])
    images = normalize_imagenet(rgb.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255.0))
    positive = synth.demo_audio_inputs(np.stack([o.audio for s in scenes for o in s.objects]))
    n = len(positive)
    spec = synth.DEMO_FRONTEND
    noise = spectrogram_inputs([noise_signal(spec, run_seed=0, repetition=0, index=i) for i in range(n)], spec)
    boxes = np.array([o.box for s in scenes for o in s.objects])
    return {
        "images": np.ascontiguousarray(images),
        "positive": positive,
        "silence": np.repeat(silence_input(spec)[None], n, axis=0),
        "noise": noise,
        "boxes": boxes,
    }


@pytest.fixture(scope="module")
def maps(batch):
    """Raw (N, 14, 14) maps per model and condition, from the fused graphs."""
    out = {}
    for name in NAMES:
        session = _session(DEMO_ROOT / name / "model.onnx")
        out[name] = {
            cond: session.run(["map"], {"image": batch["images"], "audio": batch[cond]})[0]
            for cond in ("positive", "silence", "noise")
        }
    return out


def test_hashes_file_lists_every_shipped_file_with_its_sha256():
    listed = {}
    for line in (DEMO_ROOT / "SHA256SUMS").read_text().splitlines():
        digest, relative = line.split("  ", 1)
        listed[relative] = digest
    on_disk = {p.relative_to(DEMO_ROOT).as_posix() for p in DEMO_ROOT.rglob("*") if p.is_file()} - {"SHA256SUMS"}
    assert set(listed) == on_disk
    for relative, digest in listed.items():
        assert _hash(DEMO_ROOT / relative) == digest, relative
    for name in NAMES:
        assert {f"{name}/{g}" for g in ("visual.onnx", "audio.onnx", "model.onnx", "manifest.json")} <= set(listed)


@pytest.mark.parametrize("name", NAMES)
def test_manifest_records_the_files_and_the_training(name):
    import json

    folder = DEMO_ROOT / name
    manifest = Manifest.read(folder)
    manifest.verify_files(folder)  # every graph and the weights match their recorded sha256
    assert manifest.model == name and manifest.frontend == synth.DEMO_FRONTEND.name
    assert manifest.inputs["audio"].shape == ("batch", *synth.DEMO_FRONTEND.output_shape())
    assert all(p.passed for p in manifest.parity.values())
    for graph in manifest.graphs:
        assert (folder / graph.file).stat().st_size <= 5 * 2**20  # <= 5 MB each
    training = json.loads((folder / "training.json").read_text())
    assert training["model"] == name
    assert training["command"].startswith("python -m vsslrt.export.train_demo")
    assert {"seed", "steps", "wall_seconds"} <= set(training) and training["data"]["data_seed"] == synth.DEFAULT_SEED
    # `vsslrt bench` reports each demo at its own F-maximising universal threshold: the one measured
    # on the test split by the training script, recorded with its provenance.
    assert manifest.thresholds["maxf"].value == training["test_metrics"]["threshold"]
    assert "F-maximising" in manifest.thresholds["maxf"].provenance


@pytest.mark.parametrize("name", NAMES)
def test_graphs_load_and_produce_the_declared_shapes(name, batch):
    from vsslrt.head import similarity_maps

    folder = DEMO_ROOT / name
    manifest = Manifest.read(folder)
    images, audio = batch["images"][:3], batch["positive"][:3]
    visual = _session(folder / "visual.onnx").run(["visual"], {"image": images})[0]
    embedding = _session(folder / "audio.onnx").run(["audio_embedding"], {"audio": audio})[0]
    fused = _session(folder / "model.onnx").run(["map"], {"image": images, "audio": audio})[0]
    for got, key in ((visual, "visual"), (embedding, "audio_embedding"), (fused, "map")):
        declared = manifest.outputs[key].shape
        assert got.shape == (3, *declared[1:]) and got.dtype == np.float32, key
    assert np.allclose(np.linalg.norm(visual, axis=2), 1.0, atol=1e-5)
    assert np.allclose(np.linalg.norm(embedding, axis=2), 1.0, atol=1e-5)
    split = np.asarray(similarity_maps(visual, embedding, manifest.head))
    assert np.abs(split - fused).max() < 1e-5
    assert fused.min() >= 0.0 and fused.max() <= 1.0  # (cos + 1) / 2


def _peak_in_box(maps: np.ndarray, boxes: np.ndarray) -> float:
    """Share of maps whose maximum cell centre (14x14 grid over 224 px, align-corners) is in the box."""
    n, h, w = maps.shape
    flat = maps.reshape(n, -1).argmax(axis=1)
    y = (flat // w) * 223 / (h - 1)
    x = (flat % w) * 223 / (w - 1)
    inside = (x >= boxes[:, 0]) & (x < boxes[:, 2]) & (y >= boxes[:, 1]) & (y < boxes[:, 3])
    return float(inside.mean())


# Measured on these 32 records with the shipped models: peak in the box for 97% (demo-pos) and 97%
# (demo-san) of the records; chance is about 20% (a box covers a fifth of the image).
PEAK_IN_BOX_MIN = {"demo-pos": 0.8, "demo-san": 0.8}


@pytest.mark.parametrize("name", NAMES)
def test_both_demos_localise_the_sounding_object(name, maps, batch):
    assert _peak_in_box(maps[name]["positive"], batch["boxes"]) >= PEAK_IN_BOX_MIN[name]


def _maxima(m: np.ndarray) -> np.ndarray:
    return m.reshape(len(m), -1).max(axis=1)


def test_demo_san_stays_dark_under_silence_and_noise_where_demo_pos_lights_up(maps):
    # Measured on these records (map maxima, (cos + 1) / 2 scale):
    #   demo-pos  silence: min 0.66, median 0.74;  noise: min 0.65, median 0.73
    #   demo-san  silence: max 0.054, median 0.048; noise: max 0.055, median 0.049
    pos, san = maps["demo-pos"], maps["demo-san"]
    for cond in ("silence", "noise"):
        assert _maxima(san[cond]).max() <= 0.1, cond
        assert _maxima(pos[cond]).min() >= 0.55, cond
        assert np.median(_maxima(pos[cond])) - np.median(_maxima(san[cond])) >= 0.5, cond


def test_demo_san_positive_maxima_stay_above_its_negative_maxima(maps):
    # Measured: on every one of these records demo-san's positive map peaks higher than its silence
    # and noise maps (so its low values are a calibrated scale, not a dead model).
    san = maps["demo-san"]
    for cond in ("silence", "noise"):
        assert np.mean(_maxima(san["positive"]) > _maxima(san[cond])) >= 0.9, cond


def _pia(maps: np.ndarray, threshold: float) -> float:
    """Mean share of the 224 x 224 image above `threshold` (the evaluator's bilinear, align-corners upsampling)."""
    from vsslrt.eval.interp import upsample

    return float((upsample(maps, "bilinear", xp=np, dtype=np.float32) > threshold).mean())


def test_at_their_own_thresholds_demo_pos_lights_up_under_silence_and_noise_and_demo_san_does_not(maps):
    # Measured on these records at each manifest's maxf threshold: demo-pos 9.4-9.7% of the image under
    # silence and noise, demo-san 0%.
    t = {name: Manifest.read(DEMO_ROOT / name).thresholds["maxf"].value for name in NAMES}
    for cond in ("silence", "noise"):
        assert _pia(maps["demo-pos"][cond], t["demo-pos"]) >= 0.05, cond
        assert _pia(maps["demo-san"][cond], t["demo-san"]) <= 0.01, cond
