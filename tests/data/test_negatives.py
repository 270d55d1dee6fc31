"""Per-sample negatives: offscreen choice and noise, seeded by (run seed, repetition, sample index)."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from tests.data.conftest import write_image, write_wav
from vsslrt.data.datasets import load_dataset
from vsslrt.data.frontends import FRONTENDS
from vsslrt.data.negatives import choose_offscreen, noise_signal, offscreen_plan
from vsslrt.errors import InputError


def test_offscreen_is_never_an_onscreen_class_on_is3_mini(is3_mini):
    ds = load_dataset("is3", is3_mini)
    owner = {clip.name: cls for cls, clips in ds.class_clips.items() for clip in clips}
    for sample in ds:
        for rep in range(60):
            clip = choose_offscreen(ds, sample.index, run_seed=7, repetition=rep)
            assert owner[clip.name] not in sample.onscreen, (sample.name, clip.name)
            assert clip.index >= 0 and ds[clip.index].group != sample.group
    # lion_cat: both objects are on screen, so neither lion nor cat clips are ever drawn.
    lion_cat = next(s for s in ds if s.name == "lion_cat_872_cat")
    drawn = {owner[choose_offscreen(ds, lion_cat.index, run_seed=1, repetition=r).name] for r in range(200)}
    assert drawn == {"accordion", "bus", "cello", "chicken", "tractor", "turkey"}


def test_choice_depends_only_on_seed_repetition_and_index(is3_mini):
    ds = load_dataset("is3", is3_mini)
    a = offscreen_plan(ds, run_seed=3, repeats=4)
    b = offscreen_plan(ds, list(range(8, 16)), run_seed=3, repeats=4)
    assert [rep[8:] for rep in a] == b
    assert offscreen_plan(ds, run_seed=3, repeats=4) == a
    assert offscreen_plan(ds, run_seed=4, repeats=4) != a
    assert a[0] != a[1]  # repetitions draw new sets


def test_two_stage_sampling_is_uniform_over_classes_not_files(tmp_path):
    root = tmp_path / "skewed"
    records = [{"image": "a.png", "audio": "a.wav", "class": "target", "group": 0}]
    records += [{"image": f"r{i}.png", "audio": f"r{i}.wav", "class": "rare" if i == 0 else "common", "group": i + 1} for i in range(10)]
    for rec in records:
        write_image(root / rec["image"], 4, 4)
        write_wav(root / rec["audio"], 0.05)
    (root / "manifest.jsonl").write_text("\n".join(json.dumps(r) for r in records))
    ds = load_dataset("manifest", root)
    counts = Counter(choose_offscreen(ds, 0, run_seed=0, repetition=r).name == "r0" for r in range(600))
    # "rare" holds 1 clip of 10 but is half of the candidate classes: drawn about half of the time.
    assert 240 <= counts[True] <= 360


def test_flickr_offscreen_is_another_clip(flickr_dir):
    ds = load_dataset("flickr", flickr_dir)
    chosen = {choose_offscreen(ds, 0, run_seed=0, repetition=r).index for r in range(50)}
    assert chosen == {1, 2}


def test_noise_is_standard_normal_of_the_frontend_length():
    lengths = {"ezvsl": 160000, "fnac": 48000, "lvs": 48000, "ssltie": 160000}
    for name, n in lengths.items():
        noise = noise_signal(FRONTENDS[name], run_seed=1, repetition=0, index=5)
        assert noise.shape == (n,) and noise.dtype == np.float64
    a = noise_signal("ezvsl", run_seed=1, repetition=0, index=5)
    np.testing.assert_array_equal(a, noise_signal("ezvsl", run_seed=1, repetition=0, index=5))
    assert not np.array_equal(a, noise_signal("ezvsl", run_seed=1, repetition=1, index=5))
    assert not np.array_equal(a, noise_signal("ezvsl", run_seed=1, repetition=0, index=6))
    assert abs(a.mean()) < 0.01 and abs(a.std() - 1.0) < 0.01


def test_bad_seeds_are_input_errors(is3_mini):
    ds = load_dataset("is3", is3_mini)
    with pytest.raises(InputError, match="run seed: expected a non-negative integer, got -1"):
        choose_offscreen(ds, 0, run_seed=-1, repetition=0)
    with pytest.raises(InputError, match="repetition"):
        noise_signal("lvs", run_seed=0, repetition=1.5, index=0)


def test_nth_other_equals_the_list_of_other_images(manifest_dir):
    ds = load_dataset("manifest", manifest_dir)
    for sample in ds:
        others = ds.offscreen_others(sample.index)
        assert ds.count_others(sample.index) == len(others)
        assert [ds.nth_other(sample.index, n) for n in range(len(others))] == others
