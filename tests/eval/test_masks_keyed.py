"""The mask evaluator's NumPy float32 histogram keys against a binary search and plain counts."""

from __future__ import annotations

import numpy as np
import pytest

from vsslrt.eval.masks import _keyed_histograms, f_thresholds


def _direct(p: np.ndarray, gt: np.ndarray, threshold: float) -> np.ndarray:
    bins = np.searchsorted(f_thresholds(), p, side="right")  # the number of tau_j <= p
    on = p > np.float32(threshold)
    out = np.zeros((p.shape[0], 2, 2, 256), np.int64)
    for r in range(p.shape[0]):
        np.add.at(out[r], (on[r].astype(int), gt[r].astype(int), bins[r]), 1)
    return out


@pytest.mark.parametrize("threshold", [0.5, 0.0, 0.3, 1.0, -2.0])
def test_keyed_histograms_equal_a_binary_search(threshold):
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
            np.zeros(n, np.float32)]
    p = np.stack([rng.permutation(r) for r in rows]).astype(np.float32)
    gt = rng.random(p.shape) < 0.4
    np.testing.assert_array_equal(_keyed_histograms(p, gt, threshold), _direct(p, gt, threshold))
