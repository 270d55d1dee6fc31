"""Upsampling weights against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from vsslrt.eval.interp import source_coordinates, upsample, weight_matrix


def test_bilinear_align_corners_coordinates():
    coords = source_coordinates(7, "bilinear")
    assert coords[0] == 0.0 and coords[223] == 6.0
    assert coords[1] == pytest.approx(6 / 223)


def test_cv2_coordinates_are_pixel_centres_clamped():
    coords = source_coordinates(2, "cv2")
    # (x + 0.5) * 2 / 224 - 0.5 = (x + 0.5) / 112 - 0.5, clamped to [0, 1]
    assert coords[0] == 0.0 and coords[55] == 0.0  # -0.4955 and -0.0045 clamp to the first pixel
    assert coords[56] == pytest.approx(0.5 / 112)
    assert coords[111] == pytest.approx(111.5 / 112 - 0.5)
    assert coords[168] == 1.0 and coords[223] == 1.0


@pytest.mark.parametrize("interp", ["bilinear", "cv2"])
@pytest.mark.parametrize("n_in", [1, 2, 7, 14])
def test_weight_rows_are_two_tap_and_sum_to_one(interp, n_in):
    w = weight_matrix(n_in, interp)
    assert w.shape == (224, n_in)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=0, atol=1e-15)
    assert (np.count_nonzero(w, axis=1) <= 2).all()
    assert (w >= 0).all()


def test_2x2_bilinear_corners_and_centre():
    m = np.array([[[1.0, 2.0], [3.0, 5.0]]])
    out = upsample(m, "bilinear", xp=np, dtype=np.float64).reshape(224, 224)
    assert out[0, 0] == 1.0 and out[0, 223] == 2.0 and out[223, 0] == 3.0 and out[223, 223] == 5.0
    fy, fx = 111 / 223, 112 / 223
    expected = (1 - fy) * (1 - fx) * 1 + (1 - fy) * fx * 2 + fy * (1 - fx) * 3 + fy * fx * 5
    assert out[111, 112] == pytest.approx(expected, rel=0, abs=1e-14)


def test_2x2_cv2_replicates_edges_and_blends_inside():
    m = np.array([[[1.0, 2.0], [3.0, 5.0]]])
    out = upsample(m, "cv2", xp=np, dtype=np.float64).reshape(224, 224)
    np.testing.assert_array_equal(out[:56, :56], 1.0)  # top-left quadrant of clamped coordinates
    np.testing.assert_array_equal(out[168:, 168:], 5.0)
    fy = fx = 111.5 / 112 - 0.5
    expected = (1 - fy) * (1 - fx) * 1 + (1 - fy) * fx * 2 + fy * (1 - fx) * 3 + fy * fx * 5
    assert out[111, 111] == pytest.approx(expected, rel=0, abs=1e-14)


@pytest.mark.parametrize("interp", ["bilinear", "cv2"])
def test_matches_four_tap_formula_on_random_maps(interp):
    rng = np.random.default_rng(0)
    m = rng.random((3, 7, 5))
    out = upsample(m, interp, xp=np, dtype=np.float64).reshape(3, 224, 224)
    cy, cx = source_coordinates(7, interp), source_coordinates(5, interp)
    y0, x0 = np.floor(cy).astype(int), np.floor(cx).astype(int)
    y1, x1 = np.minimum(y0 + 1, 6), np.minimum(x0 + 1, 4)
    fy, fx = (cy - y0)[:, None], (cx - x0)[None, :]
    ref = (
        (1 - fy) * (1 - fx) * m[:, y0][:, :, x0]
        + (1 - fy) * fx * m[:, y0][:, :, x1]
        + fy * (1 - fx) * m[:, y1][:, :, x0]
        + fy * fx * m[:, y1][:, :, x1]
    )
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-14)


def test_224_maps_are_not_resampled_and_float32_is_kept():
    rng = np.random.default_rng(1)
    m = rng.random((2, 224, 224), dtype=np.float32)
    out = upsample(m, "bilinear", xp=np, dtype=np.float32)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, m.reshape(2, -1))


def test_constant_map_stays_constant_after_rounding():
    m = np.full((1, 7, 7), 0.6, dtype=np.float32)
    for interp in ("bilinear", "cv2"):
        out = upsample(m, interp, xp=np, dtype=np.float32)
        np.testing.assert_array_equal(out, np.float32(0.6))
