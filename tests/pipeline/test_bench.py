"""The benchmark pipeline against an independent per-sample computation, resume, and latency (the CLI: tests/cli)."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_engine import make_tiny_engine  # noqa: E402

from vsslrt.pipeline.bench import run_bench  # noqa: E402
from vsslrt.pipeline.results import BenchSettings  # noqa: E402

IS3_MINI = Path(os.environ.get("VSSLRT_IS3_MINI", Path(__file__).resolve().parents[2].parent / "shared" / "data" / "is3-mini"))
pytestmark = pytest.mark.skipif(not IS3_MINI.is_dir(), reason=f"the is3-mini fixture is not at {IS3_MINI}")


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> Path:
    return make_tiny_engine(tmp_path_factory.mktemp("engines") / "tiny")


def _settings(**kw) -> BenchSettings:
    base = dict(dataset="is3", data_dir=IS3_MINI, batch=5, workers=1)
    base.update(kw)
    return BenchSettings(**base)


def _per_sample_reference(engine: Path, settings: BenchSettings) -> dict[str, float]:
    """Every input built sample by sample through the data layer's public functions, encoders at
    batch 1, maps with the head, then one `evaluate` call: no embedding reuse, no batching."""
    from vsslrt.data import (audio_input, choose_offscreen, get_frontend, load_dataset, noise_signal, prepare_signal,
                             preprocess_image, read_audio, silence_input, spectrogram_inputs)
    from vsslrt.data.images import decode_image
    from vsslrt.pipeline.encoders import open_encoders
    from vsslrt.eval import evaluate
    from vsslrt.head import similarity_maps

    ds = load_dataset("is3", IS3_MINI)
    maps = {c: [] for c in ("pos", "silence", "noise", "offscreen")}
    obj, gts, groups = [], [], []
    with open_encoders(engine) as enc:
        spec = get_frontend(enc.manifest.frontend)
        head = enc.manifest.head
        for rep in range(settings.effective_repeats):
            for i in range(len(ds)):
                sample = ds[i]
                image = preprocess_image(decode_image(sample.image))[None]
                visual = enc.embed_images(image)
                clip = choose_offscreen(ds, i, run_seed=settings.seed, repetition=rep, mode=settings.protocol)
                noise = spectrogram_inputs([noise_signal(spec, run_seed=settings.seed, repetition=rep, index=i)], spec,
                                           compress=spec.compresses_negatives(settings.protocol))
                audio = {
                    "pos": audio_input(sample.audio, spec, mode=settings.protocol, dataset_kind="is3")[None],
                    "silence": silence_input(spec, settings.protocol)[None],
                    "noise": noise,
                    # An offscreen clip is prepared in its own role (paper mode: Q8/Q9 quirks).
                    "offscreen": spectrogram_inputs([prepare_signal(read_audio(clip.audio), spec, mode=settings.protocol,
                                                                    role="offscreen", dataset_kind="is3")[0]], spec),
                }
                for cond, spectrogram in audio.items():
                    maps[cond].append(similarity_maps(visual, enc.embed_audio(np.ascontiguousarray(spectrogram)), head)[0])
                obj.append(enc.object_maps(image)[0])
                gts.append(ds.gt_maps([i])[0])
                groups.append(sample.group)
        thresholds = {k: t.value for k, t in enc.manifest.thresholds.items()}
    stack = {k: np.stack(v) for k, v in maps.items()}
    return evaluate(stack["pos"], stack["silence"], stack["noise"], stack["offscreen"], np.stack(gts),
                    obj=np.stack(obj), group=np.array(groups), protocol=settings.protocol, thresholds=thresholds)


def test_pipeline_matches_per_sample_computation(engine, tmp_path):
    settings = _settings()
    (result,) = run_bench([engine], settings, tmp_path / "run")
    expected = _per_sample_reference(engine, settings)
    assert set(result.metrics) == set(expected)
    for key, value in expected.items():
        assert result.metrics[key] == pytest.approx(value, abs=1e-6, nan_ok=True), key
    assert result.n_samples == 16
    for name in ("metrics.json", "report.md", "max_values.npz", "latency.json", "max_values.png", "threshold_sweep.png"):
        assert (tmp_path / "run" / name).stat().st_size > 0, name
    doc = json.loads((tmp_path / "run" / "metrics.json").read_text())
    entry = doc["engines"]["tiny"]
    assert entry["thresholds"]["maxq3"] == {"value": 0.58, "provenance": "test"}
    assert set(entry["baselines"]) == {"centre", "whole", "random", "objectness"}
    assert doc["settings"]["seed"] == 0 and doc["settings"]["protocol"] == "fixed"
    with np.load(tmp_path / "run" / "max_values.npz") as npz:
        assert npz["tiny/pos"].shape == (16,)


def test_paper_mode_with_repeats_matches_per_sample_computation(engine, tmp_path):
    settings = _settings(protocol="paper", repeats=2, baselines=False, seed=3)
    (result,) = run_bench([engine], settings, tmp_path / "run")
    expected = _per_sample_reference(engine, settings)
    assert "F_Pos_Neg" in result.metrics
    for key, value in expected.items():
        assert result.metrics[key] == pytest.approx(value, abs=1e-6, nan_ok=True), key


def test_noise_bank_changes_only_noise(engine, tmp_path):
    plain = run_bench([engine], _settings(baselines=False), tmp_path / "a")[0].metrics
    banked = run_bench([engine], _settings(baselines=False, noise_bank=3), tmp_path / "b")[0].metrics
    assert plain["pos/miou@maxq3"] == banked["pos/miou@maxq3"]
    assert plain["offscreen/pia@maxq3"] == banked["offscreen/pia@maxq3"]
    assert plain["max/noise/mean"] != banked["max/noise/mean"]


def test_interrupted_run_resumes_to_identical_numbers(engine, tmp_path):
    settings = _settings(batch=4)
    full = run_bench([engine], settings, tmp_path / "full")[0]
    partial = run_bench([engine], settings, tmp_path / "cut", stop_after_batches=2)
    assert partial == []
    assert not (tmp_path / "cut" / "metrics.json").exists()  # nothing half-written
    assert len(list((tmp_path / "cut" / "shards" / "tiny").glob("part-*.npz"))) == 2  # one part per finished batch
    from vsslrt.errors import InputError

    with pytest.raises(InputError, match="--resume"):
        run_bench([engine], settings, tmp_path / "cut")
    resumed = run_bench([engine], settings, tmp_path / "cut", resume=True)[0]
    assert resumed.metrics.keys() == full.metrics.keys()
    for key in full.metrics:
        a, b = full.metrics[key], resumed.metrics[key]
        assert (np.isnan(a) and np.isnan(b)) or a == b, key
    for name in full.baselines:
        assert full.baselines[name] == pytest.approx(resumed.baselines[name], nan_ok=True, abs=0)


def test_resume_with_other_settings_is_refused(engine, tmp_path):
    from vsslrt.errors import ManifestMismatchError

    run_bench([engine], _settings(batch=4), tmp_path / "cut", stop_after_batches=1)
    with pytest.raises(ManifestMismatchError, match="seed"):
        run_bench([engine], _settings(batch=4, seed=9), tmp_path / "cut", resume=True)


def test_two_engines_one_comparison(engine, tmp_path):
    other = make_tiny_engine(tmp_path / "tiny2", seed=1, with_object=False)
    results = run_bench([engine, other], _settings(limit=6, baselines=False), tmp_path / "run")
    assert [r.name for r in results] == ["tiny", "tiny2"]
    report = (tmp_path / "run" / "report.md").read_text()
    assert "| metric | tiny | margin | tiny2 | margin |" in report
    assert list((tmp_path / "run").glob("compare_*.png"))
    assert "pos_ogl/miou@median" in results[0].metrics and "pos_ogl/miou@median" not in results[1].metrics


def test_changed_engine_file_is_refused(engine, tmp_path):
    from vsslrt.errors import ManifestMismatchError

    copy = tmp_path / "tampered"
    shutil.copytree(engine, copy)
    with open(copy / "audio.onnx", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ManifestMismatchError, match="audio.onnx"):
        run_bench([copy], _settings(limit=2), tmp_path / "run")


def _corrupt_copy(tmp_path: Path) -> Path:
    data = tmp_path / "is3"
    shutil.copytree(IS3_MINI, data)
    (data / "audio_wav" / "lion_cat_872_cat.wav").write_bytes(b"RIFF not really a wav")
    return data


def test_unreadable_clip_fails_or_is_skipped(engine, tmp_path):
    from vsslrt.errors import DataError

    data = _corrupt_copy(tmp_path)
    with pytest.raises(DataError, match="lion_cat_872_cat.wav"):
        run_bench([engine], _settings(data_dir=data, baselines=False), tmp_path / "strict")
    (result,) = run_bench([engine], _settings(data_dir=data, baselines=False, skip_bad=True), tmp_path / "lenient")
    bad = [s for s in result.skipped if s["name"] == "lion_cat_872_cat"]
    assert bad and "lion_cat_872_cat.wav" in bad[0]["file"]
    # Samples whose offscreen clip was the broken one are skipped too, never evaluated with a wrong input.
    assert result.n_samples == 16 - len(result.skipped)
    assert "Skipped samples" in (tmp_path / "lenient" / "report.md").read_text()


def test_latency_only(engine, tmp_path):
    from vsslrt.pipeline.latency import profile_engines

    report = profile_engines([engine], tmp_path, batch_sizes=(1, 2), min_seconds=0.05, min_iterations=2)
    rows = report["engines"]["tiny"]["sweep"]
    assert [r["batch_size"] for r in rows] == [1, 2]
    assert rows[0]["latency_ms"]["median"] > 0
    assert set(rows[0]["stages_ms"]) == {"visual_encoder", "audio_encoder", "head"}
    assert json.loads((tmp_path / "latency.json").read_text())["engines"]["tiny"]["gflops_per_sample"] > 0
