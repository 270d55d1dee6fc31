"""The mask evaluator's compiled histogram keys (float32 and float64 rows) against a binary search and plain counts."""

from __future__ import annotations

import numpy as np
import pytest

from vsslrt.eval.masks import _keyed_histograms, f_thresholds


def _direct(p: np.ndarray, gt: np.ndarray, threshold: float) -> np.ndarray:
    bins = np.searchsorted(f_thresholds().astype(p.dtype), p, side="right")  # the number of tau_j <= p
    on = p > p.dtype.type(threshold)
    out = np.zeros((p.shape[0], 2, 2, 256), np.int64)
    for r in range(p.shape[0]):
        np.add.at(out[r], (on[r].astype(int), gt[r].astype(int), bins[r]), 1)
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threshold", [0.5, 0.0, 0.3, 1.0, -2.0])
def test_keyed_histograms_equal_a_binary_search(threshold, dtype):
    rng = np.random.default_rng(3)
    tau = f_thresholds()
    t = np.float32(threshold)
    edges = np.concatenate([tau, np.nextafter(tau, np.float32(-1)), np.nextafter(tau, np.float32(2)),
                            [t, np.nextafter(t, np.float32(-3)), np.nextafter(t, np.float32(3))],
                            np.float32([-5, -0.0, 0, 1e30, 2, 1.0000001, -1e30, 1e-40, -1e-40, 3.4e38, -3.4e38])])
    n = 4096
    rows = [np.concatenate([edges, rng.random(n - edges.size, dtype=np.float32) * 1.4 - 0.2]),
            rng.random(n, dtype=np.float32),
            (rng.integers(0, 255, n) / np.float32(254)).astype(np.float32),  # on the grid's neighbours
            # around the grid points, inside and just outside the window where the guess is trusted
            ((rng.integers(0, 255, n) + rng.uniform(-3e-4, 3e-4, n)) / 254).astype(np.float32),
            np.zeros(n, np.float32)]
    p = np.stack([rng.permutation(r) for r in rows]).astype(np.float32)
    if dtype == np.float64:  # the float32 edges plus their float64 neighbours
        wide = p.astype(np.float64)
        p = np.concatenate([wide, np.nextafter(wide, -np.inf), np.nextafter(wide, np.inf)])
    gt = rng.random(p.shape) < 0.4
    np.testing.assert_array_equal(_keyed_histograms(p, gt, threshold), _direct(p, gt, threshold))


def test_keyed_histograms_of_smooth_and_constant_rows():
    """Long runs of one key (smooth maps, constant rows, a row on one grid point) count alike."""
    tau = f_thresholds()
    n = 224 * 224
    ramp = np.linspace(-0.1, 1.1, n, dtype=np.float32)
    p = np.stack([ramp, ramp[::-1].copy(), np.full(n, tau[127]), np.full(n, 0.25, np.float32), np.zeros(n, np.float32)])
    gt = np.zeros(p.shape, bool)
    gt[:, : n // 3] = True
    np.testing.assert_array_equal(_keyed_histograms(p, gt, 0.5), _direct(p, gt, 0.5))


def test_keyed_histograms_of_no_rows():
    assert _keyed_histograms(np.zeros((0, 16), np.float32), np.zeros((0, 16), bool), 0.5).shape == (0, 2, 2, 256)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_keyed_histograms_refuse_non_finite_values(bad):
    from vsslrt.errors import InputError

    p = np.full((2, 300), 0.3, np.float32)
    p[1, 7] = bad
    with pytest.raises(InputError, match="finite maps, got 1 NaN or inf values"):
        _keyed_histograms(p, np.zeros(p.shape, bool), 0.5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scale", ["probability", "logits"])
def test_compiled_measure_equals_the_array_path_bit_for_bit(dtype, scale):
    """`measure` on NumPy (the compiled kernel) against its array-API path, value for value."""
    from vsslrt.eval import _xp
    from vsslrt.eval.masks import make_mask_config, measure

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
