"""The synthetic IS3-like generator: determinism, geometry, offscreen draws and files (the CLI: tests/cli)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile
from PIL import Image

from vsslrt.data import synth
from vsslrt.errors import InputError


@pytest.fixture(scope="module")
def scenes():
    return [synth.generate_scene(seed=5, split="test", index=i) for i in range(6)]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "split"
    return synth.write_split(out, 12, seed=5, split="test")


def _same_scene(a: synth.Scene, b: synth.Scene) -> bool:
    return (
        a.image.tobytes() == b.image.tobytes()
        and [(o.class_name, o.box) for o in a.objects] == [(o.class_name, o.box) for o in b.objects]
        and all(x.audio.tobytes() == y.audio.tobytes() for x, y in zip(a.objects, b.objects))
    )


def test_same_seed_same_bytes(scenes):
    again = synth.generate_scene(seed=5, split="test", index=3)
    assert _same_scene(scenes[3], again)


def test_other_seed_split_or_index_differs(scenes):
    ref = scenes[0]
    for other in (
        synth.generate_scene(seed=6, split="test", index=0),
        synth.generate_scene(seed=5, split="train", index=0),
        scenes[1],
    ):
        assert ref.image.tobytes() != other.image.tobytes()
        assert ref.objects[0].audio.tobytes() != other.objects[0].audio.tobytes()


def test_scene_shapes_and_value_ranges(scenes):
    for scene in scenes:
        assert scene.image.shape == (224, 224, 3) and scene.image.dtype == np.uint8
        assert scene.objects[0].class_name != scene.objects[1].class_name
        for obj in scene.objects:
            assert obj.audio.shape == (synth.CLIP_SAMPLES,) and obj.audio.dtype == np.float32
            assert np.abs(obj.audio).max() <= 1.0
            assert np.abs(obj.audio).max() > 10 ** (-46 / 20)  # peaks at -45 dBFS or louder: not silence


def test_boxes_are_tight_around_the_object_pixels(scenes):
    for scene in scenes:
        for obj, mask in zip(scene.objects, scene.masks):
            x1, y1, x2, y2 = obj.box
            assert 0 <= x1 < x2 <= 224 and 0 <= y1 < y2 <= 224
            # Every object pixel lies in the box, and each box edge touches an object pixel.
            inside = np.zeros_like(mask)
            inside[y1:y2, x1:x2] = True
            assert not (mask & ~inside).any()
            assert mask[y1, x1:x2].any() and mask[y2 - 1, x1:x2].any()
            assert mask[y1:y2, x1].any() and mask[y1:y2, x2 - 1].any()
            # The object's visible pixels carry its texture's two colours and nothing else.
            colors = np.unique(scene.image[mask].reshape(-1, 3), axis=0)
            assert 1 <= len(colors) <= 2
            # A box is a sizeable part of the image (objects are the scene's main content).
            assert 0.05 < (x2 - x1) * (y2 - y1) / 224**2 < 0.5


def test_object_colours_follow_the_class(scenes):
    for scene in scenes:
        for obj, mask in zip(scene.objects, scene.masks):
            palette = np.asarray(synth.get_class(obj.class_name).colors, dtype=np.float64)  # (2, 3)
            pixels = scene.image[mask].reshape(-1, 3).astype(np.float64)
            # Each pixel is one of the class's two colours times a lighting factor in [0.8, 1.15].
            shade = np.clip(pixels @ palette.T / np.sum(palette**2, axis=1), 0.8, 1.15)  # (P, 2)
            fitted = np.clip(shade[:, :, None] * palette[None], 0, 255)
            error = np.abs(fitted - pixels[:, None, :]).max(axis=2).min(axis=1)
            assert error.max() <= 3.0, obj.class_name


def test_scene_i_does_not_depend_on_how_many_are_asked(scenes):
    later = list(synth.iter_scenes(2, seed=5, split="test", start=4))
    assert _same_scene(later[0], scenes[4]) and _same_scene(later[1], scenes[5])


def test_written_split_is_readable_and_matches_the_generator(written, scenes):
    records = synth.read_manifest(written)
    assert len(records) == 12
    info = json.loads((written / "info.json").read_text())
    assert info["n_records"] == 12 and info["seed"] == 5 and info["generator_version"] == synth.GENERATOR_VERSION
    for rec in records[:4]:
        scene = scenes[rec["group"]]
        obj = next(o for o in scene.objects if o.class_name == rec["class"])
        image = np.asarray(Image.open(written / rec["image"]).convert("RGB"))
        assert np.array_equal(image, scene.image)
        wave, rate = soundfile.read(written / rec["audio"], dtype="float32")
        assert rate == synth.SAMPLE_RATE and np.array_equal(wave, obj.audio)
        (x1, y1, x2, y2), = rec["boxes"]
        assert np.allclose(np.array([x1, y1, x2, y2]) * 224, obj.box)
        assert sorted(rec["classes"]) == sorted(o.class_name for o in scene.objects)
    class_files = json.loads((written / "class_files_dict.json").read_text())
    assert set(class_files) == set(synth.CLASS_NAMES)
    listed = sorted(f for files in class_files.values() for f in files)
    assert listed == sorted(rec["name"] for rec in records)
    for rec in records:
        assert rec["name"] in class_files[rec["class"]]


def test_offscreen_class_is_never_on_screen(written):
    records = synth.read_manifest(written)
    by_audio = {rec["audio"]: rec for rec in records}
    for rec in records:
        assert rec["offscreen_class"] not in rec["classes"]
        source = by_audio[rec["offscreen"]]
        assert source["class"] == rec["offscreen_class"]
        assert source["group"] != rec["group"]


def test_offscreen_draw_is_deterministic_and_none_without_candidates():
    records = [r for s in synth.iter_scenes(4, seed=1) for r in synth.scene_records(s)]
    again = [dict(r) for r in records]
    synth.assign_offscreen(records, 1, "test")
    synth.assign_offscreen(again, 1, "test")
    assert [r["offscreen"] for r in records] == [r["offscreen"] for r in again]
    lonely = synth.scene_records(synth.generate_scene(1, "test", 0))
    synth.assign_offscreen(lonely, 1, "test")
    assert all(r["offscreen"] is None and r["offscreen_class"] is None for r in lonely)


def test_write_split_refuses_bad_counts_and_non_empty_folders(tmp_path):
    for bad in (0, 3, -2, 2.0):
        with pytest.raises(InputError, match="even integer"):
            synth.write_split(tmp_path / "x", bad)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    with pytest.raises(InputError, match="new or empty"):
        synth.write_split(tmp_path / "full", 2)
    assert (tmp_path / "full" / "keep.txt").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]  # no temp folder left behind
    with pytest.raises(InputError, match="split"):
        synth.generate_scene(0, "validation", 0)


def test_ensure_split_generates_once_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VSSLRT_CACHE", str(tmp_path))
    first = synth.ensure_split("train", seed=2, n_records=4)
    assert first == tmp_path / "synth" / f"{synth.GENERATOR_VERSION}-2" / "train-4"
    stamp = (first / "manifest.jsonl").stat().st_mtime_ns
    calls = []
    again = synth.ensure_split("train", seed=2, n_records=4, progress=lambda *a: calls.append(a))
    assert again == first and calls == []  # cached: nothing regenerated
    assert (first / "manifest.jsonl").stat().st_mtime_ns == stamp
    assert [p.name for p in first.parent.iterdir()] == ["train-4"]  # temp folders cleaned up
    assert len(synth.read_manifest(first)) == 4


def test_the_demo_front_end_is_the_registered_one_and_reads_the_generated_clips_whole():
    from vsslrt.data.frontends import get_frontend

    assert synth.DEMO_FRONTEND is get_frontend("demo")
    assert (synth.DEMO_FRONTEND.sample_rate, synth.DEMO_FRONTEND.duration) == (synth.SAMPLE_RATE, synth.CLIP_SECONDS)
    assert synth.demo_audio_inputs(np.zeros((1, synth.CLIP_SAMPLES))).shape == (1, *synth.DEMO_FRONTEND.output_shape())
