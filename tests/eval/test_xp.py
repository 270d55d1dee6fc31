"""The array helpers: NumPy fast paths equal the standard (CuPy) paths and the plain definitions."""

from __future__ import annotations

import numpy as np
import pytest

from vsslrt.eval import _xp


def _rows(dtype, seed=0):
    rng = np.random.default_rng(seed)
    rows = rng.standard_normal((9, 4096)) * np.array([1e-30, 1, 1e30, 1, 1, 1, 1, 1, 1])[:, None]
    rows[1] = np.round(rows[1], 1)  # many ties
    rows[2, :50] = -0.0
    rows[2, 50:100] = 0.0
    rows[3] = 0.25  # constant
    return rows.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fast", [True, False])
def test_order_statistics_of_non_negative_rows_skip_the_key_transform(dtype, fast):
    rows = np.abs(_rows(dtype))
    rows[2, :50] = -0.0  # still "non-negative": equal to 0.0
    k_rows = np.random.default_rng(4).integers(0, 4096, 9)
    with _xp.use_fast_paths(fast):
        at_common, at_rows = _xp.order_statistics(rows, 2048, k_rows, xp=np, nonnegative=True)
    ordered = np.sort(rows, axis=1)
    np.testing.assert_array_equal(at_common, ordered[:, 2048])
    np.testing.assert_array_equal(at_rows, ordered[np.arange(9), k_rows])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fast", [True, False])
def test_order_statistics_equal_sorting(dtype, fast):
    rows = _rows(dtype)
    rng = np.random.default_rng(1)
    for k_rows in (rng.integers(0, 4096, 9), np.full(9, 2048), np.array([0, 4095, 1, 4094, 2047, 2049, 3000, 10, 2048])):
        with _xp.use_fast_paths(fast):
            at_common, at_rows = _xp.order_statistics(rows, 2048, k_rows, xp=np)
        ordered = np.sort(rows, axis=1)
        np.testing.assert_array_equal(at_common, ordered[:, 2048])
        np.testing.assert_array_equal(at_rows, ordered[np.arange(9), k_rows])
        assert at_common.dtype == dtype and at_rows.dtype == dtype


def test_count_greater_sorted_is_searchsorted_right():
    rng = np.random.default_rng(2)
    ordered = np.sort(np.round(rng.random((5, 1000)), 2), axis=1)
    t = np.array([-1.0, 0.0, 0.25, 0.5, 0.99, 1.0, 2.0])
    got = _xp.count_greater_sorted(ordered, t, xp=np)
    want = np.stack([1000 - np.searchsorted(row, t, side="right") for row in ordered])
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("n", [64 * 784, 100])  # packed bits, and a length that cannot be packed
def test_mask_counts_packed_and_plain(n):
    rng = np.random.default_rng(3)
    maps = [rng.random((4, n), dtype=np.float32) for _ in range(3)]
    thr = rng.random((4, 5, 1), dtype=np.float32)
    ground = rng.random((4, n)) > 0.7
    on = [m[:, None] > thr for m in maps]  # (4, 5, n) each: the plain definition
    want_counts = np.stack([np.count_nonzero(o, axis=-1) for o in on], axis=1)
    want_ground = np.count_nonzero(on[0] & ground[:, None], axis=-1)
    pairs = ((0, 1), (0, 2), (1, 2))
    want_pairs = np.stack([np.count_nonzero((on[i] & on[j])[:, 1:4], axis=-1) for i, j in pairs], axis=1)
    for fast in (True, False):
        with _xp.use_fast_paths(fast):
            masks = _xp.binarize(maps, thr, xp=np)
            np.testing.assert_array_equal(_xp.count_true(masks, xp=np), want_counts)
            np.testing.assert_array_equal(_xp.count_both(masks[:, 0], _xp.as_mask(ground, xp=np), xp=np), want_ground)
            got = _xp.count_pairs(masks, [0, 0, 1], [1, 2, 2], 1, 4, xp=np)
            np.testing.assert_array_equal(got, want_pairs)


def test_scratch_buffers_are_reused_per_thread():
    first = _xp.scratch("test", (4, 8), np.int32)
    second = _xp.scratch("test", (2, 8), np.int32)
    assert np.shares_memory(first, second)
    assert _xp.scratch("test", (64, 64), np.int32).shape == (64, 64)
