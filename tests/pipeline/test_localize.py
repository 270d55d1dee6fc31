"""`vsslrt.pipeline.localize`: decisions consistent with the benchmark run, maps, masks, boxes, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vsslrt.pipeline.calibrate import Calibration
from vsslrt.errors import DataError, InputError, ManifestMismatchError
from vsslrt.pipeline.localize import (Box, Localizer, Pair, mask_boxes, pairs_from_folder, pairs_from_manifest,
                             profile_localize, upsample_map)


@pytest.fixture(scope="module")
def localizer(engine, calibration_file):
    with Localizer(engine, calibration_file, threads=1) as loc:
        yield loc


def _with_thresholds(calibration_file: Path, *, detection: float, localization: float) -> dict:
    doc = json.loads(calibration_file.read_text())
    doc["detection"]["threshold"] = detection
    doc["localization"]["threshold"] = localization
    return doc


def test_scores_and_decisions_equal_the_runs_maxima(localizer, fit_run, fit_pairs, calibration_file):
    with np.load(fit_run / "max_values.npz") as npz:
        run_max = npz["tiny/pos"]
    threshold = Calibration.read(calibration_file).detection_threshold
    results = localizer.localize_batch(fit_pairs, batch_size=3)  # chunks of 3, 3 and 2
    scores = np.array([r.score for r in results])
    # The same front-ends, encoders and head as the benchmark, on the same samples.
    np.testing.assert_allclose(scores, run_max, rtol=0, atol=1e-6)
    clear = np.abs(run_max - threshold) > 1e-5
    assert clear.all(), "a maximum sits on the detection threshold; the comparison would be fragile"
    assert [r.sounding for r in results] == list(run_max > threshold)
    assert [r.name for r in results] == [image.stem for image, _ in fit_pairs]
    single = localizer.localize(*fit_pairs[4])
    assert single.score == pytest.approx(results[4].score, abs=1e-6)
    np.testing.assert_allclose(single.raw_map, results[4].raw_map, atol=1e-6)


def test_result_map_mask_and_boxes_at_image_size(engine, fit_pairs, calibration_file):
    image, audio = fit_pairs[0]
    with Localizer(engine, calibration_file, map_size="image", threads=1) as loc:
        result = loc.localize(image, audio)
    assert result.image_size == (1024, 1024) and result.map.shape == (1024, 1024) == result.mask.shape
    assert result.raw_map.shape == (7, 7) and result.score == float(result.raw_map.max())
    # The upsampled map never exceeds the raw maximum (linear interpolation).
    assert result.map.max() <= result.score + 1e-6
    if result.sounding:
        np.testing.assert_array_equal(result.mask, result.map > result.localization_threshold)
    covered = np.zeros_like(result.mask)
    for box in result.boxes:
        assert 0 <= box.x0 < box.x1 <= 1024 and 0 <= box.y0 < box.y1 <= 1024
        assert box.peak > result.localization_threshold
        covered[box.y0:box.y1, box.x0:box.x1] = True
    assert not np.any(result.mask & ~covered)
    assert sum(b.area for b in result.boxes) == int(result.mask.sum())
    assert set(result.timing_ms) >= {"image_input", "audio_input", "visual_encoder", "audio_encoder", "head",
                                     "postprocess", "total"}
    doc = result.to_json()
    assert doc["score"] == result.score and len(doc["raw_map"]) == 7 and doc["sounding"] == result.sounding
    json.dumps(doc)  # serialisable as is


def test_gate_and_protocol_frame(engine, calibration_file, fit_pairs):
    image, audio = fit_pairs[1]
    with Localizer(engine, calibration_file, threads=1) as probe:
        score = probe.localize(image, audio).score
    silent = _with_thresholds(calibration_file, detection=score + 0.01, localization=score - 0.05)
    with Localizer(engine, silent, threads=1) as gated:
        result = gated.localize(image, audio)
    assert not result.sounding and not result.mask.any() and result.boxes == []
    with Localizer(engine, silent, gate=False, threads=1) as open_:  # default frame: 224 x 224
        result = open_.localize(image, audio)
    assert not result.sounding and result.mask.shape == (224, 224) and result.mask.any()
    # Boxes are in image pixels (1024) even when the mask is in the 224 frame.
    assert max(b.x1 for b in result.boxes) > 224 or max(b.y1 for b in result.boxes) > 224
    np.testing.assert_array_equal(result.mask, result.map > score - 0.05)


def test_upsample_equals_the_evaluators_224_upsampling():
    from vsslrt.eval.interp import upsample

    raw = np.random.default_rng(3).random((7, 7)).astype(np.float32)
    for interp in ("bilinear", "cv2"):
        ours = upsample_map(raw, (224, 224), interp)
        theirs = np.asarray(upsample(raw[None], interp, xp=np, dtype=np.float32)).reshape(224, 224)
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)
    wide = upsample_map(raw, (30, 50))
    assert wide.shape == (30, 50)
    assert wide[0, 0] == pytest.approx(raw[0, 0]) and wide[-1, -1] == pytest.approx(raw[-1, -1])


def test_mask_boxes_uses_eight_connectivity_and_scales_to_the_image():
    mask = np.zeros((10, 12), dtype=bool)
    mask[1:3, 1:4] = True  # a block
    mask[3, 4] = True  # touches the block diagonally: same region
    mask[7:9, 8:11] = True  # a second region
    values = np.zeros(mask.shape)
    values[2, 2], values[8, 9] = 0.9, 0.95
    boxes = mask_boxes(mask, values)
    assert boxes == [Box(8, 7, 11, 9, 6, 0.95), Box(1, 1, 5, 4, 7, 0.9)]
    scaled = mask_boxes(mask, values, scale=(2.0, 3.0), limits=(21, 30))
    assert [(b.x0, b.y0, b.x1, b.y1) for b in scaled] == [(16, 21, 21, 27), (2, 3, 10, 12)]
    assert mask_boxes(np.zeros((4, 4), bool), np.zeros((4, 4))) == []


def test_refuses_a_calibration_of_another_engine(other_engine, calibration_file):
    with pytest.raises(ManifestMismatchError, match="manifest sha256") as info:
        Localizer(other_engine, calibration_file)
    assert str(calibration_file) in str(info.value) and "vsslrt calibrate" in str(info.value)


def test_missing_engine_folder(tmp_path, calibration_file):
    with pytest.raises(InputError, match="expected an engine folder, got no such folder"):
        Localizer(tmp_path / "nope", calibration_file)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="manifest.json"):
        Localizer(tmp_path / "empty", calibration_file)


def test_unreadable_inputs_name_the_file(localizer, fit_pairs, tmp_path):
    bad_image = tmp_path / "broken.jpg"
    bad_image.write_bytes(b"not a jpeg at all")
    bad_audio = tmp_path / "broken.wav"
    bad_audio.write_bytes(b"RIFF....WAVEjunk")
    with pytest.raises(DataError, match="broken.jpg"):
        localizer.localize(bad_image, fit_pairs[0][1])
    with pytest.raises(DataError, match="broken.wav"):
        localizer.localize(fit_pairs[0][0], bad_audio)
    with pytest.raises(DataError, match="missing.wav"):
        localizer.localize(fit_pairs[0][0], tmp_path / "missing.wav")


def test_pairs_from_folder_and_manifest(tmp_path):
    folder = tmp_path / "shots"
    (folder / "img").mkdir(parents=True)
    (folder / "snd").mkdir()
    for stem in ("a", "b"):
        (folder / "img" / f"{stem}.jpg").write_bytes(b"")
        (folder / "snd" / f"{stem}.wav").write_bytes(b"")
    (folder / "img" / "c.png").write_bytes(b"")
    (folder / "notes.txt").write_text("ignored")
    pairs, unmatched = pairs_from_folder(folder)
    assert pairs == [Pair("a", folder / "img" / "a.jpg", folder / "snd" / "a.wav"),
                     Pair("b", folder / "img" / "b.jpg", folder / "snd" / "b.wav")]
    assert unmatched == [folder / "img" / "c.png"]
    (folder / "snd" / "a.flac").write_bytes(b"")
    with pytest.raises(InputError, match="one file per stem"):
        pairs_from_folder(folder)
    with pytest.raises(InputError, match="none matching"):
        pairs_from_folder(folder / "img")

    manifest = tmp_path / "pairs.jsonl"
    manifest.write_text('{"image": "x/1.jpg", "audio": "y/1.wav"}\n\n{"image": "/abs/2.jpg", "audio": "2.wav", "name": "two"}\n')
    assert pairs_from_manifest(manifest) == [Pair("1", tmp_path / "x/1.jpg", tmp_path / "y/1.wav"),
                                             Pair("two", Path("/abs/2.jpg"), tmp_path / "2.wav")]
    manifest.write_text('{"image": "1.jpg", "audio": "1.wav"}\n{"image": "1.jpg"}\n')
    with pytest.raises(InputError, match=r"pairs.jsonl:2: expected an object with 'image' and 'audio'"):
        pairs_from_manifest(manifest)
    manifest.write_text('{"image": "1.jpg", "audio": "1.wav"}\n{"image": "d/1.jpg", "audio": "2.wav"}\n')
    with pytest.raises(InputError, match="also on line 1"):
        pairs_from_manifest(manifest)
    manifest.write_text('{"image": "1.jpg", "audio": "1.wav", "name": "../up"}\n')
    with pytest.raises(InputError, match="plain file name"):
        pairs_from_manifest(manifest)


def test_profile_reports_warm_latency(localizer, fit_pairs):
    report = profile_localize(localizer, *fit_pairs[0], iterations=3)
    assert report["iterations"] == 3 and report["warmup"]["iterations"] >= 2
    ms = report["latency_ms"]
    assert 0 < ms["min"] <= ms["median"] <= ms["percentile(90%)"] <= ms["percentile(99%)"] <= ms["max"]
    assert {"visual_encoder", "postprocess"} <= set(report["stages_ms"])
