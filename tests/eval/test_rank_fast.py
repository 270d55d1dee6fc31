"""Pixel AP's fast paths (compiled radix sort, binary counts) against the sorting path, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from vsslrt.eval import _xp
from vsslrt.eval.multisource import average_precision


def _sorted_path(labels: np.ndarray, scores: np.ndarray) -> float:
    with _xp.use_fast_paths(False):
        return average_precision(labels, scores)


def _by_definition(labels: np.ndarray, scores: np.ndarray) -> float:
    """sum over distinct scores, descending, of (R_k - R_(k-1)) P_k: one threshold at a time."""
    labels = labels.reshape(-1).astype(bool)
    scores = scores.reshape(-1).astype(np.float64)
    positives = labels.sum()
    ap, previous = 0.0, 0.0
    for value in np.unique(scores)[::-1]:
        chosen = scores >= value
        recall = (chosen & labels).sum() / positives
        ap += (recall - previous) * ((chosen & labels).sum() / chosen.sum())
        previous = recall
    return ap


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["random", "ties", "signed_zeros", "negative", "constant", "wide"])
def test_radix_path_equals_the_sorting_path(kind, dtype):
    rng = np.random.default_rng(4)
    n = 2 * 224 * 224
    if kind == "random":
        scores = rng.random(n)
    elif kind == "ties":
        scores = np.round(rng.random(n) * 20) / 20
    elif kind == "signed_zeros":
        scores = rng.choice(np.array([-0.0, 0.0, 0.5, 1.0]), n)
    elif kind == "negative":
        scores = rng.standard_normal(n) * 3
    elif kind == "constant":
        scores = np.full(n, 0.25)
    else:
        scores = np.exp(rng.standard_normal(n) * 8)  # finite in float32 (maps are checked finite)
    scores = scores.astype(dtype)
    labels = rng.random(n) < 0.2
    fast = average_precision(labels, scores)
    assert fast == _sorted_path(labels, scores)
    small = slice(0, 3000)  # the definition's loop over thresholds, on a part
    assert average_precision(labels[small], scores[small]) == pytest.approx(_by_definition(labels[small], scores[small]),
                                                                            rel=1e-12)


@pytest.mark.parametrize("fraction", [0.0, 0.3, 1.0])
def test_binary_scores_count_as_their_float_copy(fraction):
    rng = np.random.default_rng(5)
    labels = rng.random(50176) < 0.25
    binary = rng.random(50176) < fraction
    assert average_precision(labels, binary) == _sorted_path(labels, binary.astype(np.float64))


def test_no_positive_label_has_no_ap():
    assert np.isnan(average_precision(np.zeros(10, bool), np.arange(10.0)))
