from __future__ import annotations

import numpy as np
import pytest

from vsslrt.pipeline.baselines import BASELINES, baseline_maps


@pytest.mark.parametrize("name", [b for b in BASELINES if b != "objectness"])
def test_baselines_shape_and_range(name):
    maps = baseline_maps(name, sample_ids=np.arange(4), size=7, value_range=(0.0, 1.0))
    assert maps.shape == (4, 7, 7)
    assert maps.dtype == np.float32
    assert maps.min() >= 0.0 and maps.max() <= 1.0


def test_centre_prior_peaks_in_the_centre():
    maps = baseline_maps("centre", sample_ids=np.arange(1), size=7, value_range=(-1.0, 1.0))
    assert np.unravel_index(np.argmax(maps[0]), (7, 7)) == (3, 3)
    assert maps[0, 0, 0] < maps[0, 3, 3]


def test_random_baseline_depends_on_sample_id_not_batch():
    all_at_once = baseline_maps("random", sample_ids=np.arange(6), size=7, value_range=(0, 1), seed=3)
    split = np.concatenate([
        baseline_maps("random", sample_ids=np.arange(3), size=7, value_range=(0, 1), seed=3),
        baseline_maps("random", sample_ids=np.arange(3, 6), size=7, value_range=(0, 1), seed=3),
    ])
    np.testing.assert_array_equal(all_at_once, split)
    assert not np.array_equal(all_at_once[0], all_at_once[1])


def test_objectness_is_normalised_per_sample():
    obj = np.stack([np.arange(49, dtype=np.float32).reshape(7, 7), np.full((7, 7), 5.0, np.float32)])
    maps = baseline_maps("objectness", sample_ids=np.arange(2), size=7, value_range=(0.0, 1.0), obj_maps=obj)
    assert maps[0].min() == 0.0 and maps[0].max() == 1.0
    assert np.all(maps[1] == 0.0)  # a flat saliency map carries no location


def test_objectness_needs_maps():
    with pytest.raises(ValueError):
        baseline_maps("objectness", sample_ids=np.arange(1), size=7, value_range=(0, 1))
