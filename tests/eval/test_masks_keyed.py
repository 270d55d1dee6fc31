"""The mask evaluator's compiled kernel (float32 and float64 rows) against its array path, value for value."""

from __future__ import annotations

import numpy as np
import pytest

from vsslrt.eval import _xp
from vsslrt.eval.masks import f_thresholds, make_mask_config, measure


N = 224 * 224


def _both_paths(p: np.ndarray, gt: np.ndarray, threshold: float) -> tuple[dict, dict]:
    """`measure` of (B, 50176) rows on the compiled path and on the array path (binary search near the grid)."""
    config = make_mask_config("fixed", threshold=threshold)
    maps = p.reshape(-1, 224, 224)
    fast = measure(maps, gt, config, xp=np)
    with _xp.use_fast_paths(False), np.errstate(over="ignore", invalid="ignore"):  # the extremes in float32
        reference = measure(maps, gt, config, xp=np)
    return fast, reference


def _assert_same(fast: dict, reference: dict) -> None:
    assert fast.keys() == reference.keys()
    for key in fast:
        np.testing.assert_array_equal(fast[key], reference[key], err_msg=key)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threshold", [0.5, 0.0, 0.3, 1.0, -2.0])
def test_edge_values_count_as_a_binary_search_puts_them(threshold, dtype):
    """Grid points, their neighbours, the threshold's neighbours, values just inside and outside the
    window where the kernel trusts its guess, and extremes: the F-curve (every F-grid count) and IoU
    and FPR (the counts at the threshold) equal the array path's, which bins by binary search."""
    rng = np.random.default_rng(3)
    tau = f_thresholds()
    t = np.float32(threshold)
    edges = np.concatenate([tau, np.nextafter(tau, np.float32(-1)), np.nextafter(tau, np.float32(2)),
                            [t, np.nextafter(t, np.float32(-3)), np.nextafter(t, np.float32(3))],
                            np.float32([-5, -0.0, 0, 1e30, 2, 1.0000001, -1e30, 1e-40, -1e-40, 3.4e38, -3.4e38])])
    rows = [np.concatenate([edges, rng.random(N - edges.size, dtype=np.float32) * 1.4 - 0.2]),
            rng.random(N, dtype=np.float32),
            (rng.integers(0, 255, N) / np.float32(254)).astype(np.float32),  # on the grid's neighbours
            # around the grid points, inside and just outside the window where the guess is trusted
            ((rng.integers(0, 255, N) + rng.uniform(-3e-4, 3e-4, N)) / 254).astype(np.float32)]
    p = np.stack([rng.permutation(r) for r in rows]).astype(np.float32)
    if dtype == np.float64:  # the float32 edges plus their float64 neighbours
        wide = p.astype(np.float64)
        p = np.concatenate([wide, np.nextafter(wide, -np.inf), np.nextafter(wide, np.inf)])
    gt = rng.random(p.shape) < 0.4
    _assert_same(*_both_paths(p, gt, threshold))


def test_smooth_and_constant_rows():
    """Long runs of one key (smooth maps, constant rows, a row on one grid point) count alike."""
    tau = f_thresholds()
    ramp = np.linspace(-0.1, 1.1, N, dtype=np.float32)
    p = np.stack([ramp, ramp[::-1].copy(), np.full(N, tau[127]), np.full(N, 0.25, np.float32), np.zeros(N, np.float32)])
    gt = np.zeros(p.shape, bool)
    gt[:, : N // 3] = True
    _assert_same(*_both_paths(p, gt, 0.5))


def test_no_frames():
    out = measure(np.zeros((0, 224, 224), np.float32), np.zeros((0, N), bool), make_mask_config(), xp=np)
    assert out["f_curve"].shape == (0, 255) and out["iou"].shape == (0,)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_refused_by_count(bad):
    from vsslrt.errors import InputError

    p = np.full((2, 224, 224), 0.3, np.float32)
    p[1, 0, 7] = bad
    with pytest.raises(InputError, match="finite maps, got 1 NaN or inf values"):
        measure(p, np.zeros((2, N), bool), make_mask_config(), xp=np)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scale", ["probability", "logits"])
def test_compiled_measure_equals_the_array_path_bit_for_bit(dtype, scale):
    """`measure` on NumPy (the compiled kernel) against its array-API path, value for value."""
    rng = np.random.default_rng(11)
    tau = f_thresholds()
    n = 224 * 224
    rows = [rng.random(n), np.zeros(n), np.full(n, 0.5), rng.choice(tau, n), rng.normal(0, 3, n),
            np.linspace(-0.2, 1.2, n), rng.random(n), rng.random(n)]
    maps = np.stack(rows).astype(dtype).reshape(-1, 224, 224)
    gt = rng.random((len(rows), n)) < 0.3
    gt[1] = False  # an empty mask
    gt[6] = True  # a full one
    gt[7, : n // 2] = True
    gt[7, n // 2:] = False
    for threshold in (0.5, 0.0, float(tau[77])):
        config = make_mask_config("fixed", scale=scale, threshold=threshold)
        fast = measure(maps, gt, config, xp=np)
        with _xp.use_fast_paths(False):
            reference = measure(maps, gt, config, xp=np)
        assert fast.keys() == reference.keys()
        for key in fast:
            np.testing.assert_array_equal(fast[key], reference[key], err_msg=f"{key} at threshold {threshold}")
    small = rng.random((3, 7, 7)).astype(dtype)  # upsampled first, alike on both paths
    config = make_mask_config("fixed", scale=scale)
    fast = measure(small, gt[:3], config, xp=np)
    with _xp.use_fast_paths(False):
        reference = measure(small, gt[:3], config, xp=np)
    for key in fast:
        np.testing.assert_array_equal(fast[key], reference[key], err_msg=key)
